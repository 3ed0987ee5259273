"""The bitemporal rules, written again in plain Python over a synthetic set's files: what the
evaluation's gold numbers are computed with. No SQL and no strongroom engine is involved, so a
tool that returns the same numbers has been checked against an independent reading.

The rules (those of :mod:`strongroom.data.base`): the loads of a dataset are applied in time
order, each up to ``known_at``; a row's key is its key columns and its valid time, and a later
row with the same key corrects the earlier one (a ``replace`` load starts afresh); of what is
left, a row is visible ``as_of`` T when its valid time is at or before T (a ``DATE`` is
compared with T's date in UTC, as the engine does).

    timeline = Timeline(read_synthetic_set(Path("/tmp/agent-eval")))
    prices = timeline.rows("prices", as_of=..., known_at=...)
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow.parquet as pq  # type: ignore[import-untyped]

from strongroom.data.synthetic.market import Load, SyntheticSet
from strongroom.errors import QueryError

__all__ = ["Row", "Timeline", "read_rows", "visible"]

Row = Mapping[str, object]


def read_rows(data: SyntheticSet, load: Load) -> list[Row]:
    """The rows of one file, typed: dates as :class:`date`, numbers as :class:`Decimal` or
    :class:`int` (a CSV's text is read as the exact decimal it spells), text as :class:`str`."""
    path = data.path(load.path)
    if load.format == "parquet":
        rows: list[Row] = pq.read_table(path).to_pylist()
        return rows
    types = dict(load.columns)
    with path.open(encoding="utf-8", newline="") as f:
        return [{name: _typed(text, types[name]) for name, text in row.items()} for row in csv.DictReader(f)]


def _typed(text: str, sql_type: str) -> object:
    if text == "":
        return None
    if sql_type == "DATE":
        return date.fromisoformat(text)
    if sql_type in ("BIGINT", "INTEGER"):
        return int(text)
    if sql_type == "DOUBLE" or sql_type.startswith("DECIMAL"):
        return Decimal(text)
    return text


def visible(loads: Iterable[tuple[Load, list[Row]]], *, as_of: datetime, known_at: datetime | None) -> list[Row]:
    """The rows of one dataset's ``loads`` (in time order, with their rows) visible at
    (``as_of``, ``known_at``; None: every load), in key order."""
    if as_of.tzinfo is None or (known_at is not None and known_at.tzinfo is None):
        raise QueryError("as_of and known_at need a time zone")
    current: dict[tuple[object, ...], Row] = {}
    for load, rows in loads:
        if known_at is not None and load.loaded_at > known_at:
            break
        if load.mode == "replace":
            current = {}
        for row in rows:
            key = (*(row[k] for k in load.key_columns), row[load.valid_time_column])
            current[key] = row
    bound = as_of.astimezone(UTC)
    out = []
    for key in sorted(current, key=lambda k: tuple(str(v) for v in k)):
        row = current[key]
        valid = key[-1]
        if isinstance(valid, datetime):
            seen = valid.astimezone(UTC) <= bound if valid.tzinfo else valid <= bound.replace(tzinfo=None)
        elif isinstance(valid, date):
            seen = valid <= bound.date()
        else:
            raise QueryError(f"valid time {valid!r} is neither a date nor a datetime")
        if seen:
            out.append(row)
    return out


class Timeline:
    """A set's files read once, to be seen at any pair of clocks."""

    def __init__(self, data: SyntheticSet) -> None:
        self.data = data
        self._rows = {load.order: read_rows(data, load) for load in data.loads}

    def loaded(self, load: Load) -> list[Row]:
        """The rows of one load, as written."""
        return self._rows[load.order]

    def rows(self, dataset: str, *, as_of: datetime, known_at: datetime | None) -> list[Row]:
        """``dataset``'s rows visible at (``as_of``, ``known_at``)."""
        loads = sorted(self.data.loads_of(dataset), key=lambda load: (load.loaded_at, load.order))
        return visible(((load, self._rows[load.order]) for load in loads), as_of=as_of, known_at=known_at)
