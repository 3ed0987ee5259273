"""The bitemporal rules both backends share: which rows a query sees, and what a load may do.

Every dataset's table holds the user's columns and three bookkeeping ones: ``_version`` (the
load that wrote the row), ``_loaded_at`` (when) and ``_superseded_at`` (when a later load
corrected or replaced it; NULL while current). A row is visible at (``as_of``, ``known_at``)
when it was loaded by ``known_at``, not yet superseded at ``known_at``, and its valid time is at
or before ``as_of``::

    _loaded_at <= known_at AND (_superseded_at IS NULL OR _superseded_at > known_at)
        AND valid_time <= as_of

A row's key is its key columns plus its valid time: a price for (ACME, 2024-03-28) loaded again
corrects that day's price only. An ``append`` load supersedes the current rows whose key it
holds; a ``replace`` load supersedes every current row. No window function is needed, so a
query for one instrument reads only that instrument's rows.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlglot import exp

from strongroom.data.base import DatasetVersion
from strongroom.data.files import StagedFile, check_dataset_name, column_name, file_sha256, stage
from strongroom.errors import IngestError, QueryError

__all__ = [
    "MODES",
    "SCHEMA",
    "VERSION_COLUMNS",
    "LoadPlan",
    "aware",
    "plan_load",
    "version_from_row",
    "version_row",
    "visible_rows",
    "visible_versions",
]

#: the schema (DuckDB and PostgreSQL) that holds the dataset tables and ``_versions``
SCHEMA = "strongroom_data"
MODES = ("append", "replace")
_TICK = timedelta(microseconds=1)


def aware(moment: datetime, what: str, error: type[Exception] = QueryError) -> datetime:
    """``moment`` in UTC; a naive datetime is refused (``error``), since its instant is unknown."""
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise error(f"{what} must be a datetime with a time zone, e.g. 2024-03-28T00:00:00+00:00")
    return moment.astimezone(UTC)


def visible_rows(version: DatasetVersion, *, as_of: datetime, known_at: datetime) -> exp.Select:
    """The SELECT of a dataset's user columns visible at (``as_of``, ``known_at``); ``version``
    is the dataset's newest (it carries the columns and the valid-time column)."""
    types = dict(version.columns)
    valid_time = version.valid_time_column
    known = _literal(aware(known_at, "known_at"), "TIMESTAMPTZ")
    superseded = exp.column("_superseded_at", quoted=True)
    where = exp.and_(
        exp.LTE(this=exp.column("_loaded_at", quoted=True), expression=known),
        exp.paren(exp.or_(exp.Is(this=superseded, expression=exp.Null()), exp.GT(this=superseded, expression=known))),
        exp.LTE(
            this=exp.column(valid_time, quoted=True),
            expression=_literal(aware(as_of, "as_of"), types[valid_time]),
        ),
    )
    table = exp.Table(this=exp.to_identifier(version.dataset, quoted=True), db=exp.to_identifier(SCHEMA, quoted=True))
    return exp.select(*(exp.column(name, quoted=True) for name, _ in version.columns)).from_(table).where(where)


def _literal(moment: datetime, sql_type: str) -> exp.Expression:
    # the bound has the column's own type: no comparison depends on a session's time zone
    if sql_type == "DATE":
        return exp.cast(exp.Literal.string(moment.date().isoformat()), exp.DataType.build("DATE"))
    if sql_type == "TIMESTAMP":
        text = moment.replace(tzinfo=None).isoformat(sep=" ")
        return exp.cast(exp.Literal.string(text), exp.DataType.build("TIMESTAMP"))
    return exp.cast(exp.Literal.string(moment.isoformat(sep=" ")), exp.DataType.build("TIMESTAMPTZ"))


def visible_versions(
    versions: Iterable[DatasetVersion], names: Iterable[str], known_at: datetime
) -> tuple[DatasetVersion, ...]:
    """The newest version of each named dataset loaded at or before ``known_at``."""
    wanted = set(names)
    known = aware(known_at, "known_at")
    newest: dict[str, DatasetVersion] = {}
    for v in versions:
        if v.dataset in wanted and v.loaded_at <= known:
            if v.dataset not in newest or v.version > newest[v.dataset].version:
                newest[v.dataset] = v
    return tuple(newest[name] for name in sorted(newest))


# -- loads ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadPlan:
    """What loading a file as the next version of a dataset does, decided before a row is read
    (:func:`plan_load`). ``kept``: the newest version already is this load (write nothing);
    ``acl_only``: the same bytes under another ACL (write this version and no rows); otherwise
    stage the file (:meth:`stage`) and write its rows as :meth:`version`."""

    path: Path
    latest: DatasetVersion | None
    sha256: str
    kept: DatasetVersion | None = None
    acl_only: DatasetVersion | None = None
    new: DatasetVersion | None = None  # the next version, without the staged rows' figures

    def stage(self) -> AbstractContextManager[StagedFile]:
        """Read and check the file against the dataset (see :func:`strongroom.data.files.stage`)."""
        assert self.new is not None, "a load that writes no rows stages no file"
        return stage(
            self.path,
            valid_time_column=self.new.valid_time_column,
            key_columns=self.new.key_columns,
            existing=self.latest.columns if self.latest else None,
            sha256=self.sha256,
        )

    def version(self, staged: StagedFile) -> DatasetVersion:
        """The next version, holding the rows of ``staged`` (``superseded`` is set once written)."""
        assert self.new is not None, "a load that writes no rows has no staged version"
        return dataclasses.replace(self.new, rows=staged.rows, columns=staged.columns, source=staged.source)


def plan_load(
    name: str,
    path: Path,
    latest: DatasetVersion | None,
    *,
    acl: frozenset[str],
    valid_time_column: str,
    key_columns: Sequence[str],
    mode: str,
    loaded_by: str,
    loaded_at: datetime | None,
) -> LoadPlan:
    """Check a load of ``path`` into dataset ``name`` (whose newest version is ``latest``) and
    say what it does: both backends' rules of :meth:`~strongroom.data.base.DatasetStore.load`.
    Raises :class:`~strongroom.errors.IngestError` for a bad name, mode, column or time."""
    valid_time, keys = _check_load(name, mode, valid_time_column, key_columns, latest)
    digest = file_sha256(path)
    repeat = _repeat_of(latest, sha256=digest, mode=mode, acl=acl)
    if latest is not None and repeat == "same":
        return LoadPlan(path, latest, digest, kept=latest)
    moment = _loaded_at_for(latest, loaded_at)
    if latest is not None and repeat == "acl":
        acl_only = dataclasses.replace(
            latest, version=latest.version + 1, loaded_at=moment, loaded_by=loaded_by, rows=0, acl=acl,
            source=path.name, superseded=0,
        )  # fmt: skip
        return LoadPlan(path, latest, digest, acl_only=acl_only)
    new = DatasetVersion(
        dataset=name, version=latest.version + 1 if latest else 1, sha256=digest, loaded_at=moment,
        loaded_by=loaded_by, rows=0, acl=acl, valid_time_column=valid_time, key_columns=keys, columns=(),
        source=path.name, mode=mode,
    )  # fmt: skip
    return LoadPlan(path, latest, digest, new=new)


def _check_load(
    name: str, mode: str, valid_time_column: str, key_columns: Sequence[str], latest: DatasetVersion | None
) -> tuple[str, tuple[str, ...]]:
    """Refuse a bad name or mode, or a valid-time or key column other than the dataset's;
    return the (lower-case) valid-time and key column names."""
    check_dataset_name(name)
    if mode not in MODES:
        raise IngestError(
            f"unknown load mode {mode!r}: use append (add and correct rows) or replace (the whole dataset)"
        )
    valid_time = column_name(valid_time_column, source="valid_time_column")
    keys = tuple(column_name(k, source="key_columns") for k in key_columns)
    if latest is not None and (valid_time, keys) != (latest.valid_time_column, latest.key_columns):
        raise IngestError(
            f"dataset {name} has valid-time column {latest.valid_time_column!r} and key columns "
            f"{list(latest.key_columns)}, not {valid_time!r} and {list(keys)}: load it with the same ones"
        )
    return valid_time, keys


def _loaded_at_for(latest: DatasetVersion | None, loaded_at: datetime | None) -> datetime:
    """When a new load happens: ``loaded_at`` (which must be after the dataset's last load, or a
    correction could land before what it corrects), or now (a tick after the last load)."""
    if loaded_at is None:
        now = datetime.now(UTC)
        return max(now, latest.loaded_at + _TICK) if latest else now
    moment = aware(loaded_at, "loaded_at", IngestError)
    if latest is not None and moment <= latest.loaded_at:
        raise IngestError(
            f"loaded_at {moment.isoformat()} is not after dataset {latest.dataset}'s last load "
            f"({latest.loaded_at.isoformat()}): loads happen in time order"
        )
    return moment


def _repeat_of(latest: DatasetVersion | None, *, sha256: str, mode: str, acl: frozenset[str]) -> str:
    """What loading these bytes again means: ``"same"`` (the newest version already is this load:
    nothing to do), ``"acl"`` (the same bytes under another ACL: a version that records the ACL
    and changes no rows) or ``"new"``. Only the newest version counts: loading an older file
    again after a correction is a real change (it corrects the correction)."""
    if latest is None or latest.sha256 != sha256 or latest.mode != mode:
        return "new"
    return "same" if latest.acl == acl else "acl"


def version_row(v: DatasetVersion) -> tuple[object, ...]:
    """The ``_versions`` row of a version (lists as JSON text)."""
    return (
        v.dataset,
        v.version,
        v.sha256,
        v.loaded_at,
        v.loaded_by,
        v.rows,
        json.dumps(sorted(v.acl)),
        v.valid_time_column,
        json.dumps(list(v.key_columns)),
        json.dumps([list(c) for c in v.columns]),
        v.source,
        v.mode,
        v.superseded,
    )


#: the columns of ``_versions``, in :func:`version_row`'s order
VERSION_COLUMNS = (
    "dataset, version, sha256, loaded_at, loaded_by, row_count, acl, valid_time_column, key_columns, "
    "column_types, source_name, load_mode, superseded"
)


def version_from_row(row: Sequence[object]) -> DatasetVersion:
    """A version from its ``_versions`` row."""
    (dataset, version, sha256, loaded_at, loaded_by, rows, acl, valid_time, keys, columns, source, mode, sup) = row
    assert isinstance(loaded_at, datetime)
    return DatasetVersion(
        dataset=str(dataset),
        version=int(str(version)),
        sha256=str(sha256),
        loaded_at=loaded_at.astimezone(UTC),
        loaded_by=str(loaded_by),
        rows=int(str(rows)),
        acl=frozenset(json.loads(str(acl))),
        valid_time_column=str(valid_time),
        key_columns=tuple(json.loads(str(keys))),
        columns=tuple((str(n), str(t)) for n, t in json.loads(str(columns))),
        source=str(source),
        mode=str(mode),
        superseded=int(str(sup)),
    )
