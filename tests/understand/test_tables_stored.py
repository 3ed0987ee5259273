from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STRONGROOM_EMBEDDER": "hash", "STRONGROOM_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "strongroom.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_tables_of_a_stored_document_within_entitlements(tmp_path: Path) -> None:
    doc = tmp_path / "terms.csv"
    doc.write_text('Field,Value\nCoupon,4.25%\nIssue price,99.412%\nNotional,"750,000,000"\n')
    home = tmp_path / "home"
    assert _run(home, "ingest", str(doc), "--acl", "rates").returncode == 0
    listed = _run(home, "tables", "list", "terms.csv", "--groups", "rates", "--json")
    assert listed.returncode == 0, listed.stderr
    (table,) = json.loads(listed.stdout)
    shown = json.loads(_run(home, "tables", "show", "terms.csv", "--groups", "rates", "--json").stdout)
    cells = [[c["text"] for c in row] for row in shown["cells"]]
    assert ["Coupon", "4.25%"] in cells and table["rows"] == len(cells)
    # cell offsets point into the stored page text, like citations do
    coupon = next(row for row in shown["cells"] if row[0]["text"] == "Coupon")[1]
    page = json.loads(_run(home, "search", "coupon", "--groups", "rates", "--json").stdout)["hits"][0]
    assert coupon["page"] == page["page"] == 1
    # a caller outside the ACL learns nothing, not even that the document exists
    denied = _run(home, "tables", "list", "terms.csv")
    assert denied.returncode != 0 and "no document 'terms.csv' that you may read" in denied.stderr
