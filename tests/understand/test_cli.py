from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from strongroom.cli.understand import classify_app, eval_extraction_command, termsheets_app
from strongroom.ingest.understand.synth import write_corpus

runner = CliRunner()


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> typer.Typer:
    monkeypatch.setenv("STRONGROOM_EMBEDDER", "hash")
    monkeypatch.setenv("STRONGROOM_HOME", str(tmp_path / "home"))
    root = typer.Typer()
    root.add_typer(classify_app, name="classify")
    root.add_typer(termsheets_app, name="termsheets")
    root.command("eval-extraction")(eval_extraction_command)
    return root


def test_generate_then_eval_extraction(app: typer.Typer, tmp_path: Path) -> None:
    corpus = tmp_path / "ts"
    assert runner.invoke(app, ["termsheets", "generate", str(corpus), "--n", "12", "--seed", "31"]).exit_code == 0
    result = runner.invoke(app, ["eval-extraction", str(corpus), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["documents"] == 12 and report["precision"] >= 0.95 and report["recall"] >= 0.9
    assert "maturity_date" in report["fields"]


def test_eval_extraction_on_a_missing_folder_says_what_to_do(app: typer.Typer, tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval-extraction", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "termsheets generate" in result.output


def test_extract_prints_fields_with_spans(app: typer.Typer, tmp_path: Path) -> None:
    write_corpus(tmp_path, 1, seed=8)
    doc = next(p for p in tmp_path.iterdir() if not p.name.endswith(".json"))
    result = runner.invoke(app, ["termsheets", "extract", str(doc), "--json"])
    assert result.exit_code == 0, result.output
    fields = {f["field"]: f for f in json.loads(result.output)[0]["fields"]}
    truth = json.loads((tmp_path / (doc.name + ".truth.json")).read_text())["fields"]
    assert fields["isin"]["value"] == truth["isin"]
    assert {"page", "start", "end", "confidence"} <= set(fields["isin"])


def test_classify_file_shows_counts_but_never_values(app: typer.Typer, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Dear Ann,\nmy card is 4111 1111 1111 1111.\nKind regards,\nBob\n")
    result = runner.invoke(app, ["classify", "file", str(note), "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)[0]
    assert row["doc_type"] == "correspondence" and row["findings"] == {"card": 1}
    assert "4111" not in result.output


def test_classify_train_and_eval(app: typer.Typer, tmp_path: Path) -> None:
    labelled = tmp_path / "labelled"
    write_corpus(labelled / "term_sheet", 6, seed=12)
    for p in (labelled / "term_sheet").glob("*.json"):
        p.unlink()
    letters = labelled / "correspondence"
    letters.mkdir()
    for i in range(6):
        (letters / f"letter{i}.txt").write_text(f"Dear client {i},\nthank you for your letter.\nKind regards,\nDesk\n")
    model = tmp_path / "model.npz"
    trained = runner.invoke(app, ["classify", "train", str(labelled), "--out", str(model)])
    assert trained.exit_code == 0, trained.output
    for extra in ([], ["--model", str(model)]):
        result = runner.invoke(app, ["classify", "eval", str(labelled), "--json", *extra])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["documents"] == 12 and report["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("stray", "text", "message"),
    [
        ("gone.pdf.truth.json", '{"fields": {"isin": "US0378331005"}}', "no document gone.pdf beside it"),
        ("bad.truth.json", "{not json", "not a truth file"),
        ("bad.truth.json", '{"layout": "a"}', "not a truth file"),
        ("bad.truth.json", '{"fields": ["isin"]}', "not a truth file"),
    ],
)
def test_eval_extraction_on_a_stray_or_malformed_truth_file_says_which(
    app: typer.Typer, tmp_path: Path, stray: str, text: str, message: str
) -> None:
    corpus = tmp_path / "ts"
    write_corpus(corpus, 2, seed=5)
    (corpus / stray).write_text(text)
    result = runner.invoke(app, ["eval-extraction", str(corpus)])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and stray in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_generate_into_a_file_is_refused(app: typer.Typer, tmp_path: Path) -> None:
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me\n")
    for target in (taken, taken / "inside"):
        result = runner.invoke(app, ["termsheets", "generate", str(target), "--n", "1"])
        assert result.exit_code == 2, result.output
        assert "not a folder" in result.output and isinstance(result.exception, SystemExit)
    assert taken.read_text() == "keep me\n"


def test_a_stored_maturity_date_that_is_not_a_date_is_a_clear_error(app: typer.Typer, tmp_path: Path) -> None:
    from strongroom.cli import app as strongroom

    doc = tmp_path / "note.txt"
    doc.write_text("Desk note. The notes mature soon.\n")
    ingest = ["ingest", str(doc), "--meta", "ts.maturity_date=soon", "--meta", "ts.isin=US0378331005"]
    assert runner.invoke(strongroom, ingest).exit_code == 0
    listed = runner.invoke(app, ["termsheets", "list", "--json"])
    assert listed.exit_code == 0 and json.loads(listed.output)[0]["maturity_date"] == "soon"
    result = runner.invoke(app, ["termsheets", "list", "--maturing-before", "2030-01-01"])
    assert result.exit_code == 1, result.output
    assert "'soon' is not a date" in result.output and "note.txt" in result.output
    assert isinstance(result.exception, SystemExit)
