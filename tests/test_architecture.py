"""docs/architecture.md draws the layers the import contract enforces: the two stay one list.

(The contract itself runs in ``make lint``: ``lint-imports`` over pyproject.toml.)
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _contract_layers() -> list[list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    return [[name.strip().removeprefix("strongroom.") for name in layer.split("|")] for layer in layers]


def _documented_layers() -> list[list[str]]:
    table = (ROOT / "docs" / "architecture.md").read_text().split("| layer (top first) |", 1)[1].split("\n\n", 1)[0]
    # one row per layer (a row without a name is a further layer of the group above it);
    # siblings share a row, separated by an escaped pipe
    rows = [re.split(r"(?<!\\)\|", line)[2] for line in table.splitlines()[2:] if line.startswith("|")]
    return [re.findall(r"`(\w+)`", packages) for packages in rows]


def test_the_documented_layers_are_the_enforced_layers() -> None:
    assert _documented_layers() == _contract_layers()


def test_every_package_and_top_level_module_is_in_a_layer() -> None:
    layered = {name for layer in _contract_layers() for name in layer}
    src = ROOT / "src" / "strongroom"
    present = {p.name for p in src.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    present |= {p.stem for p in src.glob("*.py") if p.stem not in {"__init__", "__main__"}}
    assert present == layered


def test_the_cli_is_a_thin_shell() -> None:
    """Options, printing and exit codes only: the work lives in the library (at most 5% of src/)."""
    src = ROOT / "src" / "strongroom"

    def lines(paths: list[Path]) -> int:
        return sum(len(p.read_text().splitlines()) for p in paths)

    assert lines(list((src / "cli").glob("*.py"))) <= 0.05 * lines(list(src.rglob("*.py")))
