"""False positives on real filings: the 20 10-Qs of the sec10q corpus are not redacted into nonsense."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from strongroom.ingest.parsers import parse
from strongroom.ingest.understand import understand
from strongroom.ingest.understand.pii import detect_text


@pytest.mark.slow
def test_real_filings_have_no_secret_or_identifier_finding_and_keep_their_text(sec10q: Path) -> None:
    counts: Counter[str] = Counter()
    filings = sorted((sec10q / "docs").glob("*.pdf"))
    assert len(filings) == 20
    for path in filings:
        parsed = parse(path.read_bytes(), path.name)
        for page in parsed.pages:
            counts.update(f.type for f in detect_text(page.text, page.number))
        u = understand(parsed, path.name)
        # Only the cover's telephone number (and an investor-relations address) are found, and
        # they are flagged, not redacted: every page, the title and the metadata stay as parsed.
        assert u.pages == parsed.pages, path.name
        assert u.parsed(parsed) == parsed, path.name
        assert u.sensitivity == "public", path.name
    assert set(counts) <= {"phone", "email"}, counts
    assert counts["phone"] == 20 and counts["email"] <= 2, counts
