import contextlib
import io
from pathlib import Path

import pytest

import strongroom


def test_public_api_is_pinned() -> None:
    assert sorted(strongroom.__all__) == sorted(
        [
            "Answer",
            "WriteDenied",
            "View",
            "SearchRequest",
            "Platform",
            "PermissionDenied",
            "NotFound",
            "IngestRequest",
            "DocumentsRequest",
            "AskRequest",
            "Chunk",
            "Citation",
            "Claim",
            "ConfigError",
            "CorruptDocument",
            "DocumentVersion",
            "Embedder",
            "EmbeddingError",
            "ExtractiveGenerator",
            "Generator",
            "Hit",
            "IngestError",
            "IngestOptions",
            "IngestReport",
            "Page",
            "ParsedDocument",
            "Principal",
            "QueryError",
            "Runtime",
            "Scope",
            "Settings",
            "Store",
            "StoreError",
            "StrongroomError",
            "TooLarge",
            "UnsupportedFormat",
            "answer",
            "create_embedder",
            "ingest",
            "open_runtime",
            "search",
        ]
    )
    for name in strongroom.__all__:
        assert getattr(strongroom, name) is not None


def test_the_readme_python_example_runs_as_documented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python API example, run as written (in a scratch folder), prints what it says."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### The Python API") :]
    code = section[
        section.index("```python") + len("```python") : section.index("```\n", section.index("```python") + 9)
    ]
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    assert printed.getvalue().splitlines() == ["1 desk.md desk.md p.1", "()"]
    assert "`1 desk.md desk.md p.1`, then `()`" in section  # the README says what it prints
