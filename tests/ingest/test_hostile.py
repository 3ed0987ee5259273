"""Hostile files are refused with a reason, one by one, and take nothing else down.

Every file here is real (tests/ingest/hostile_files.py builds them): zip bombs, entity
bombs, a forged zip header, a spreadsheet that stalls the parser and eats memory, a PDF
whose content inflates to hundreds of MB. The figures (time to refusal, peak memory)
are in benchmarks/hostile_bench.py; these tests assert the refusal and its reason.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.errors import CorruptDocument, IngestError, ParseStopped, TooLarge
from strongroom.ingest.parsers import parse
from strongroom.ingest.parsers.limits import MB, ParseLimits, check_zip
from strongroom.ingest.pipeline import IngestOptions, ingest
from strongroom.ingest.sandbox import parse_bounded, resume_parses, run_parse, running_parses, stop_parses
from strongroom.store.sqlite import SqliteStore
from strongroom.testing import HashEmbedder
from tests.ingest import hostile_files as hostile
from tests.ingest.office_fixtures import docx_bytes, xlsx_bytes
from tests.ingest.pdf_fixtures import make_pdf

ROOT = Path(__file__).resolve().parents[2]
SLOW = ParseLimits(timeout_s=2)  # the wide sheet takes about 30 s: well past this


@pytest.fixture(scope="module")
def docx_bomb() -> bytes:
    return hostile.zip_bomb_docx(200)  # the reported attack: about 500 KB, 200 MB of XML


@pytest.fixture(scope="module")
def wide_sheet() -> bytes:
    return hostile.wide_xlsx(20_000)  # 150 KB; in-process: about 30 s and several GB


def _refusal(data: bytes, name: str, limits: ParseLimits | None = None) -> IngestError:
    with pytest.raises(IngestError) as caught:
        parse_bounded(data, name, limits)
    return caught.value


def _gone(pid: int, within_s: float = 30.0) -> bool:
    """Whether ``pid`` no longer exists, zombie included (a zombie keeps its /proc entry)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


def _first_child(timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pids := running_parses():
            return pids[0]
        time.sleep(0.01)
    raise AssertionError("no parse child started")


# -- zip packages: refused from the central directory, before anything inflates --------------


def test_docx_zip_bomb_is_refused_for_its_ratio(docx_bomb: bytes) -> None:
    error = _refusal(docx_bomb, "bomb.docx")
    assert isinstance(error, TooLarge)
    assert "bomb.docx: member 'word/document.xml' expands to 204 MB (ratio " in str(error)
    assert "over the 200:1 compression-ratio limit; this looks like a zip bomb" in str(error)
    assert "STRONGROOM_ZIP_MAX_RATIO" in str(error)


def test_zip_bomb_over_the_size_limits(docx_bomb: bytes) -> None:
    lax = ParseLimits(zip_max_ratio=1e6)
    member = _refusal(docx_bomb, "bomb.docx", ParseLimits(zip_max_ratio=1e6, zip_max_member_bytes=50 * MB))
    assert isinstance(member, TooLarge)
    assert "member 'word/document.xml' expands to 204 MB" in str(member)
    assert "over the 50 MB limit" in str(member) and "STRONGROOM_ZIP_MAX_MEMBER_BYTES" in str(member)
    total = _refusal(docx_bomb, "bomb.docx", ParseLimits(zip_max_ratio=1e6, zip_max_bytes=100 * MB))
    assert isinstance(total, TooLarge)
    assert re.match(r"bomb\.docx: expands to 20\d MB \(ratio \d+:1\), over the 100 MB limit;", str(total))
    with pytest.raises(TooLarge, match="over the 1 MB limit"):
        check_zip(docx_bomb, "bomb.docx", ParseLimits(zip_max_ratio=1e6, zip_max_member_bytes=MB))
    check_zip(docx_bomb, "bomb.docx", lax)  # within every limit: left to the parser (and the sandbox)


def test_xlsx_zip_bomb_is_refused() -> None:
    error = _refusal(hostile.zip_bomb_xlsx(200), "bomb.xlsx")
    assert isinstance(error, TooLarge)
    assert "member 'xl/worksheets/sheet1.xml' expands to 204 MB" in str(error) and "zip bomb" in str(error)


def test_a_package_of_many_members_is_refused() -> None:
    error = _refusal(hostile.many_members_docx(10_001), "many.docx")
    assert isinstance(error, TooLarge)
    assert "the package holds 10,018 files, over the 10,000 limit" in str(error)
    assert "STRONGROOM_ZIP_MAX_MEMBERS" in str(error)


def test_a_header_that_understates_a_member_is_caught_while_inflating() -> None:
    error = _refusal(hostile.lying_header_docx(200, declared=1000), "forged.docx")
    assert isinstance(error, CorruptDocument)
    assert "member 'word/document.xml' expands past the 1000 bytes its header declares: a forged zip" in str(error)


def test_bzip2_members_are_refused() -> None:
    error = _refusal(hostile.bzip2_lying_docx(50, declared=1000), "bz.docx")
    assert isinstance(error, CorruptDocument)
    assert "uses compression method 12, which Office never writes" in str(error)


@pytest.mark.parametrize(
    ("build", "name", "member"),
    [
        (hostile.entity_bomb_docx, "lol.docx", "word/document.xml"),
        (hostile.entity_bomb_xlsx, "lol.xlsx", "xl/worksheets/sheet1.xml"),
    ],
)
def test_entity_bombs_in_office_files_are_refused(build: Callable[[], bytes], name: str, member: str) -> None:
    error = _refusal(build(), name)
    assert isinstance(error, CorruptDocument)
    assert f"member {member!r} declares a DTD or XML entities, which Office never writes" in str(error)


def test_an_entity_bomb_in_html_is_never_expanded() -> None:
    document = parse_bounded(hostile.entity_bomb_html(), "lol.html")
    assert "marker" in document.pages[0].text
    assert "lollol" not in document.pages[0].text and document.text_length < 200


def test_genuine_long_documents_pass_the_zip_checks() -> None:
    check_zip(hostile.long_docx(200), "report.docx", ParseLimits())
    check_zip(xlsx_bytes({"S": [[0] * 8 for _ in range(50_000)]}), "zeros.xlsx", ParseLimits())


# -- time and memory: bounded by the child process ------------------------------------------


def test_a_parse_that_stalls_is_killed_at_the_timeout(wide_sheet: bytes) -> None:
    error = _refusal(wide_sheet, "wide.xlsx", SLOW)
    assert isinstance(error, TooLarge)
    assert str(error).startswith("wide.xlsx: parsing took over 2 s;") and "STRONGROOM_PARSE_TIMEOUT_S" in str(error)


def test_a_parse_that_eats_memory_is_stopped_at_the_limit(wide_sheet: bytes) -> None:
    error = _refusal(wide_sheet, "wide.xlsx", ParseLimits(memory_mb=200, timeout_s=600))
    assert isinstance(error, TooLarge)
    assert str(error).startswith("wide.xlsx: parsing needed over 200 MB of memory;")
    assert "STRONGROOM_PARSE_MEMORY_MB" in str(error)


def test_a_pdf_content_bomb_is_stopped_at_the_memory_limit() -> None:
    # pdfium aborts when an allocation fails: a crash, reported with the limit it likely hit
    error = _refusal(hostile.pdf_content_bomb(100), "bomb.pdf", ParseLimits(memory_mb=300, timeout_s=600))
    assert isinstance(error, CorruptDocument | TooLarge)
    assert "300 MB" in str(error) and str(error).startswith("bomb.pdf: ")


def test_a_bad_file_never_aborts_the_batch(tmp_path: Path, docx_bomb: bytes, wide_sheet: bytes) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bomb.docx").write_bytes(docx_bomb)
    (docs / "lol.docx").write_bytes(hostile.entity_bomb_docx())
    (docs / "wide.xlsx").write_bytes(wide_sheet)
    (docs / "memo.docx").write_bytes(docx_bytes(lambda d: d.add_paragraph("The borrower's leverage fell to 2.1x.")))
    (docs / "rates.md").write_text("# Rates\nThe 2031 notes pay a 4.25% coupon.\n")
    embedder = HashEmbedder(dim=64)
    store = SqliteStore(tmp_path / "home", model_id=embedder.model_id, dim=embedder.dim)
    report = ingest([docs], store, embedder, IngestOptions(parse_limits=SLOW))
    assert report.ingested == 2
    failed = {Path(f.path).name: f.error for f in report.failures}
    assert set(failed) == {"bomb.docx", "lol.docx", "wide.xlsx"}
    assert "zip bomb" in failed["bomb.docx"]
    assert "declares a DTD" in failed["lol.docx"]
    assert "parsing took over 2 s" in failed["wide.xlsx"]
    assert not running_parses()


# -- the sandbox gives what parse gives, from any thread --------------------------------------


def _samples() -> dict[str, bytes]:
    return {
        "memo.docx": docx_bytes(lambda d: (d.add_heading("Credit memo", 1), d.add_paragraph("Leverage 2.1x."))),
        "book.xlsx": xlsx_bytes({"Rates": [["Tenor", "Rate"], ["2Y", 4.25]]}, title="Curve"),
        "page.html": b"<html><title>Desk</title><body><h1>Q3</h1><p>Coupon 5.25%.</p></body></html>",
        "table.csv": b"item,q1\nRevenue,100\n",
        "notes.md": "# Notes\n\nMargin \u2013 up.\n".encode(),
        "pages.txt": b"one\fTwo",
        "report.pdf": make_pdf(["Total net sales 82,959", "Page two"], info={"Title": "Q3"}),
    }


@pytest.mark.parametrize("name", sorted(_samples()))
def test_the_sandbox_returns_what_parse_returns(name: str) -> None:
    data = _samples()[name]
    assert parse_bounded(data, name) == parse(data, name)
    assert parse_bounded(data, name, ParseLimits(in_process=True)) == parse(data, name)


def test_real_filings_parse_the_same_in_the_sandbox(sec10q: Path) -> None:
    for path in sorted((sec10q / "docs").glob("*.pdf"))[:3]:
        data = path.read_bytes()
        outcome = run_parse(data, path.name)
        assert outcome.error is None and outcome.document == parse(data, path.name)
        assert outcome.peak_rss_mb is not None and outcome.peak_rss_mb > 0


def test_errors_keep_their_type_and_message() -> None:
    for data, name in ((b"", "empty.txt"), (b"%PDF-1.7 not really", "broken.pdf"), (b"x", "file.exe")):
        with pytest.raises(IngestError) as in_process:
            parse(data, name)
        with pytest.raises(IngestError) as bounded:
            parse_bounded(data, name)
        assert (type(bounded.value), str(bounded.value)) == (type(in_process.value), str(in_process.value))


def test_parses_from_many_threads_each_get_their_own_answer(docx_bomb: bytes, wide_sheet: bytes) -> None:
    samples = _samples()
    jobs: list[tuple[bytes, str, str]] = [
        (docx_bomb, "bomb.docx", "zip bomb"),
        (wide_sheet, "wide.xlsx", "parsing took over 2 s"),
        (samples["memo.docx"], "memo.docx", "Credit memo"),
        (samples["report.pdf"], "report.pdf", "Total net sales"),
    ] * 2

    def one(job: tuple[bytes, str, str]) -> str:
        try:
            return parse_bounded(job[0], job[1], SLOW).pages[0].text
        except IngestError as exc:
            return str(exc)

    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(one, jobs))
    for (_, name, expected), answer in zip(jobs, answers, strict=True):
        assert expected in answer, name
    assert not running_parses()


# -- nothing is left behind: killed children, stopped parses, a killed parent -----------------


@pytest.fixture
def in_flight(wide_sheet: bytes) -> Iterator[Callable[[ParseLimits], tuple[threading.Thread, list[object], int]]]:
    """Start the wide sheet parsing on a thread: the thread, its result box, the child pid."""
    threads: list[threading.Thread] = []

    def start(limits: ParseLimits) -> tuple[threading.Thread, list[object], int]:
        box: list[object] = []

        def work() -> None:
            try:
                box.append(parse_bounded(wide_sheet, "wide.xlsx", limits))
            except IngestError as exc:
                box.append(exc)

        thread = threading.Thread(target=work)
        thread.start()
        threads.append(thread)
        return thread, box, _first_child()

    yield start
    stop_parses(refuse_new=False)
    for thread in threads:
        thread.join(60)
    resume_parses()


def test_a_child_killed_at_the_timeout_is_reaped(
    in_flight: Callable[[ParseLimits], tuple[threading.Thread, list[object], int]],
) -> None:
    thread, box, pid = in_flight(SLOW)
    thread.join(60)
    assert isinstance(box[0], TooLarge) and "parsing took over 2 s" in str(box[0])
    assert _gone(pid), f"child {pid} is still there (a zombie?)"


def test_stop_parses_kills_parses_in_flight_and_refuses_new_ones(
    in_flight: Callable[[ParseLimits], tuple[threading.Thread, list[object], int]],
) -> None:
    thread, box, pid = in_flight(ParseLimits(timeout_s=600))
    try:
        assert stop_parses() == 1
        thread.join(60)
        assert isinstance(box[0], ParseStopped)
        assert "parsing was stopped because strongroom is shutting down; ingest the file again" in str(box[0])
        assert _gone(pid)
        with pytest.raises(ParseStopped):
            parse_bounded(b"still refused", "later.txt")
    finally:
        resume_parses()
    assert parse_bounded(b"accepted again", "later.txt").pages[0].text == "accepted again"


_ORPHAN_SCRIPT = """
import sys, threading, time
from strongroom.ingest.sandbox import parse_bounded, running_parses, ParseLimits
data = open(sys.argv[1], "rb").read()
threading.Thread(target=parse_bounded, args=(data, "wide.xlsx", ParseLimits(timeout_s=600, memory_mb=16384)),
                 daemon=True).start()
while not running_parses():
    time.sleep(0.01)
print(running_parses()[0], flush=True)
time.sleep(600)
"""


def test_children_die_with_a_killed_parent(tmp_path: Path, wide_sheet: bytes) -> None:
    sheet = tmp_path / "wide.xlsx"
    sheet.write_bytes(wide_sheet)
    with subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(sheet)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    ) as parent:
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            assert not _gone(child, within_s=0.5)  # parsing, as the parent's death finds it
            parent.send_signal(signal.SIGKILL)
            parent.wait(30)
            assert _gone(child), f"parse child {child} outlived its killed parent"
        finally:
            parent.kill()


_CLEAN_EXIT_SCRIPT = """
import sys
from strongroom.errors import IngestError
from strongroom.ingest.sandbox import parse_bounded, ParseLimits
data = open(sys.argv[1], "rb").read()
for limits in (ParseLimits(timeout_s=1), ParseLimits(memory_mb=150, timeout_s=600)):
    try:
        parse_bounded(data, "wide.xlsx", limits)
    except IngestError as exc:
        print(str(exc).split(";")[0], flush=True)
print(parse_bounded(b"fine", "ok.txt").pages[0].text)
"""


def test_refusals_leave_no_files_behind(tmp_path: Path, wide_sheet: bytes) -> None:
    sheet, scratch, work = tmp_path / "wide.xlsx", tmp_path / "tmp", tmp_path / "cwd"
    sheet.write_bytes(wide_sheet)
    scratch.mkdir()
    work.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", _CLEAN_EXIT_SCRIPT, str(sheet)],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "wide.xlsx: parsing took over 1 s",
        "wide.xlsx: parsing needed over 150 MB of memory",
        "fine",
    ]
    assert list(scratch.iterdir()) == [] and list(work.iterdir()) == []  # no temp files, no core files


# -- configuration ---------------------------------------------------------------------------


def test_limits_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ParseLimits.from_settings(Settings()) == ParseLimits()
    monkeypatch.setenv("STRONGROOM_ZIP_MAX_RATIO", "50")
    monkeypatch.setenv("STRONGROOM_PARSE_TIMEOUT_S", "5")
    limits = ParseLimits.from_settings(Settings(parse_memory_mb=512, zip_max_bytes=10 * MB))
    assert (limits.zip_max_ratio, limits.timeout_s, limits.memory_mb, limits.zip_max_bytes) == (50, 5, 512, 10 * MB)
    assert not limits.in_process


@pytest.mark.integration
def test_ray_workers_refuse_hostile_files_one_by_one(tmp_path: Path, docx_bomb: bytes, wide_sheet: bytes) -> None:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'ray[data]'")
    from strongroom.ingest.distributed import ingest_with_ray
    from strongroom.runtime import open_runtime

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bomb.docx").write_bytes(docx_bomb)
    (docs / "wide.xlsx").write_bytes(wide_sheet)
    (docs / "rates.md").write_text("# Rates\nThe 2031 notes pay a 4.25% coupon.\n")
    settings = Settings(home=tmp_path / "home", embedder="hash")
    runtime = open_runtime(settings)
    try:
        report = ingest_with_ray([docs], runtime.store, settings, IngestOptions(parse_limits=SLOW), workers=2)
    finally:
        runtime.close()
    assert report.ingested == 1
    failed = {Path(f.path).name: f.error for f in report.failures}
    assert "zip bomb" in failed["bomb.docx"] and "parsing took over 2 s" in failed["wide.xlsx"]
