"""One DuckDB datasets file, several processes: the file is held only while operations run.

Real processes throughout: a process that queries in a loop while this one loads (and the
other way round), a process that is not strongroom holding the file (the wait is bounded and
the error says what to do), the read connection let go when idle or when a writer asks, and a
writer's mark that a crashed writer left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from strongroom.data.base import DatasetVersion
from strongroom.data.duckdb import DuckDBDatasets
from strongroom.errors import StoreError
from strongroom.testing.dataset_contract import LATER, PRICES, T1, write_csv

SQL = "SELECT max(close) FROM prices"
LOAD = {"acl": frozenset({"research"}), "valid_time_column": "date", "key_columns": ["ticker"]}

# Queries in a loop (each new store a reader of the file) until the stop file appears, then
# once more; prints "ready" after its first answer, then a summary as JSON.
QUERIER = """
import json, sys
from datetime import datetime, UTC
from pathlib import Path
from strongroom.data.duckdb import DuckDBDatasets
from strongroom.errors import StrongroomError
path, stop = Path(sys.argv[1]), Path(sys.argv[2])
later = datetime(2030, 1, 1, tzinfo=UTC)
store = DuckDBDatasets(path, lock_wait_s=60)
seen, errors, count = [], [], 0
def ask():
    global count
    try:
        r = store.query("SELECT max(close) FROM prices", ["prices"], as_of=later, known_at=later)
        seen.append([r.datasets[0].version, r.rows[0][0]])
    except StrongroomError as exc:
        errors.append(str(exc))
    count += 1
ask()
print("ready", flush=True)
while not stop.exists():
    ask()
ask()
store.close()
print(json.dumps({"count": count, "errors": errors, "first": seen[0], "last": seen[-1],
                  "versions": sorted({v for v, _ in seen})}), flush=True)
"""

# Not strongroom: opens the file read-write and keeps it until the stop file appears.
HOLDER = """
import sys, time, duckdb
from pathlib import Path
db = duckdb.connect(sys.argv[1])
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.02)
db.close()
"""


@contextmanager
def child(script: str, *args: object) -> Iterator[subprocess.Popen[str]]:
    """A Python process running ``script``, started once it printed "ready"; stopped after."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", (line, proc.stderr.read() if proc.stderr else "")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)


def finish(proc: subprocess.Popen[str], stop: Path) -> str:
    stop.touch()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def fix(tmp_path: Path, k: int) -> Path:
    """A correction of ACME's first close to 100 + k."""
    ticker, _, day = PRICES[0]
    return write_csv(tmp_path / f"fix{k}.csv", ["date", "ticker", "close"], [(day, ticker, 100.0 + k)])


def held_for_writing_by_another(path: Path) -> bool:
    """Whether a process that is not strongroom would be refused the file for writing now."""
    probe = (
        "import sys, duckdb\ntry:\n    duckdb.connect(sys.argv[1]).close()\nexcept duckdb.IOException:\n    sys.exit(3)"
    )
    return subprocess.run([sys.executable, "-c", probe, str(path)], timeout=120).returncode == 3


@pytest.fixture
def path(tmp_path: Path) -> Path:
    store = DuckDBDatasets(tmp_path / "datasets.duckdb")
    prices = write_csv(tmp_path / "prices.csv", ["date", "ticker", "close"], [(d, t, c) for t, c, d in PRICES])
    store.load("prices", prices, loaded_at=T1, **LOAD)  # type: ignore[arg-type]
    store.close()
    return tmp_path / "datasets.duckdb"


def test_this_process_loads_while_another_queries_in_a_loop(path: Path, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    store = DuckDBDatasets(path, keep_open_s=0)
    try:
        with child(QUERIER, path, stop) as querier:
            assert held_for_writing_by_another(path)  # the querier holds the file between its queries
            versions = [store.load("prices", fix(tmp_path, k), **LOAD) for k in (1, 2, 3)]  # type: ignore[arg-type]
            summary = json.loads(finish(querier, stop))
    finally:
        store.close()
    assert [v.version for v in versions] == [2, 3, 4]
    assert summary["errors"] == []
    assert summary["first"] == [1, max(c for _, c, _ in PRICES)]
    assert summary["last"] == [4, 103.0]  # the last query sees the last load
    assert summary["count"] >= 2


def test_another_process_loads_while_this_one_queries_in_a_loop(path: Path, tmp_path: Path) -> None:
    store = DuckDBDatasets(path)
    loader = (
        "import sys; from pathlib import Path\nfrom strongroom.data.duckdb import DuckDBDatasets\n"
        "store = DuckDBDatasets(Path(sys.argv[1]), lock_wait_s=60)\n"
        "v = store.load('prices', Path(sys.argv[2]), acl=frozenset({'research'}), valid_time_column='date', "
        "key_columns=['ticker'])\nstore.close()\nprint(v.version)"
    )
    try:
        first = store.query(SQL, ["prices"], as_of=LATER, known_at=LATER)
        assert held_for_writing_by_another(path)  # this store keeps the file open between queries...
        proc = subprocess.Popen(
            [sys.executable, "-c", loader, str(path), str(fix(tmp_path, 7))], stdout=subprocess.PIPE, text=True
        )
        answers = []
        while proc.poll() is None:  # ...and lets go of it when the other process asks
            answers.append(store.query(SQL, ["prices"], as_of=LATER, known_at=LATER))
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "2"
        after = store.query(SQL, ["prices"], as_of=LATER, known_at=LATER)
    finally:
        store.close()
    assert first.datasets[0].version == 1 and answers
    assert {a.datasets[0].version for a in answers} <= {1, 2}
    assert after.datasets[0].version == 2 and after.rows == ((107.0,),)
    assert store.connections_opened >= 2  # opened again after the load


def test_a_process_that_never_lets_go_is_waited_for_then_named(path: Path, tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    with child(HOLDER, path, stop) as holder:
        with pytest.raises(StoreError) as opening:
            DuckDBDatasets(path, lock_wait_s=0.3)
        assert "stayed locked for 0.3 s" in str(opening.value) and "STRONGROOM_STORE_URL" in str(opening.value)
        finish(holder, stop)
    store = DuckDBDatasets(path, lock_wait_s=0.3, keep_open_s=0)
    try:
        stop.unlink()
        with child(HOLDER, path, stop) as holder:
            with pytest.raises(StoreError, match="stayed locked"):
                store.query(SQL, ["prices"], as_of=LATER, known_at=LATER)
            with pytest.raises(StoreError, match="try again when it has finished"):
                store.load("prices", fix(tmp_path, 1), **LOAD)  # type: ignore[arg-type]
            finish(holder, stop)
        # the same store works again once the file is free; the refused load changed nothing
        assert [v.version for v in store.versions("prices")] == [1]
        assert store.query(SQL, ["prices"], as_of=LATER, known_at=LATER).rows == ((max(c for _, c, _ in PRICES),),)
    finally:
        store.close()


def test_the_read_connection_is_let_go_when_unused(path: Path) -> None:
    each = DuckDBDatasets(path, keep_open_s=0)
    try:
        each.query(SQL, ["prices"], as_of=LATER, known_at=LATER)
        assert not held_for_writing_by_another(path)  # closed as the query ended
        each.versions()
        assert each.connections_opened == 3  # the constructor's format check, the query, the list
    finally:
        each.close()
    briefly = DuckDBDatasets(path, keep_open_s=0.2)
    try:
        briefly.query(SQL, ["prices"], as_of=LATER, known_at=LATER)
        briefly.query(SQL, ["prices"], as_of=LATER, known_at=LATER)
        deadline = time.monotonic() + 60
        while held_for_writing_by_another(path):  # let go after 0.2 s unused
            assert time.monotonic() < deadline, "the idle read connection was never closed"
    finally:
        briefly.close()


def test_an_idle_reader_lets_go_when_a_writer_of_this_process_asks(path: Path, tmp_path: Path) -> None:
    reader = DuckDBDatasets(path, keep_open_s=3600)
    writer = DuckDBDatasets(path, lock_wait_s=60)
    try:
        reader.query(SQL, ["prices"], as_of=LATER, known_at=LATER)
        with pytest.raises(duckdb.ConnectionException):  # the reader holds the file, unused
            duckdb.connect(str(path)).close()
        version = writer.load("prices", fix(tmp_path, 5), **LOAD)  # type: ignore[arg-type]
        assert version.version == 2
        assert reader.query(SQL, ["prices"], as_of=LATER, known_at=LATER).rows == ((105.0,),)
    finally:
        writer.close()
        reader.close()


def test_a_writers_mark_left_behind_holds_readers_back_only_briefly(path: Path) -> None:
    mark = path.with_name(path.name + ".write")
    store = DuckDBDatasets(path, lock_wait_s=0.2, keep_open_s=0)
    try:
        mark.touch()  # a writer asking for the file now: readers wait for it...
        with pytest.raises(StoreError, match="in use by a load in another process"):
            store.query(SQL, ["prices"], as_of=LATER, known_at=LATER)
        old = time.time() - 3600
        os.utime(mark, (old, old))  # ...but a mark nobody refreshes is one a crashed writer left
        assert store.query(SQL, ["prices"], as_of=LATER, known_at=LATER).rows
    finally:
        store.close()
    patient = DuckDBDatasets(path, lock_wait_s=60, keep_open_s=0)
    try:
        mark.touch()
        assert patient.query(SQL, ["prices"], as_of=LATER, known_at=LATER).rows  # once the mark goes stale
    finally:
        patient.close()


def test_a_load_removes_its_mark(path: Path, tmp_path: Path) -> None:
    store = DuckDBDatasets(path)
    try:
        version: DatasetVersion = store.load("prices", fix(tmp_path, 2), **LOAD)  # type: ignore[arg-type]
    finally:
        store.close()
    assert version.version == 2 and version.loaded_at <= datetime.now(UTC)
    assert not path.with_name(path.name + ".write").exists()
