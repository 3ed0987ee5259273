"""Structured datasets in the application layer: loading, listing and querying them, with
roles, entitlements, both clocks and audit records, for every entry point.

Operations in the style of :class:`~strongroom.service.operations.Operations`: each takes a
:class:`~strongroom.types.Principal` and returns an
:class:`~strongroom.service.operations.Outcome` with its audit records; the drivers
(:class:`~strongroom.service.Platform`, :class:`~strongroom.service.AsyncPlatform`) run them
where the dataset store may be used. The rules:

- **Who may read a dataset** is the ACL of its newest version, at every time: narrowing it
  hides the dataset's history too (deny by default). A dataset the principal may not read is
  absent from lists and refused in SQL with the same message as one that does not exist.
- **Both clocks.** ``as_of`` bounds the rows' valid time (no look-ahead); ``known_at`` bounds
  when a version was loaded (a correction loaded later is not seen before it). A bare date is
  the end of that day, UTC; neither clock passes now (:class:`~strongroom.service.clock.Clocks`).
- **Loading** needs the ``ingester`` role. Into an existing dataset, only for a principal who
  may read it (the same answer as for a name that is not in use by anyone it may see: nothing
  says who may read it); a load that would change who may read it needs the ``admin`` role, as
  ``strongroom acl set`` does for a document. A load dated in the past (``loaded_at``: back-filling,
  replaying a history such as the evaluation set's) needs the ``admin`` role, may not be in the
  future, and must come after the dataset's previous load (the store checks the order).
- **Querying** needs the ``reader`` role; the SQL is checked against the datasets the principal
  may read before the engine runs, and the engine runs under the configured row and time limits.
- **Records** keep what was done, never a row's values: a load's dataset, version, content hash,
  rows, ACL and mode; a query's SQL (redacted, with its keyed hash, like a search), the dataset
  versions it read, its row count, whether it was cut, its time and both clocks.

    datasets = Datasets(ops, open_datasets(settings))
    result = datasets.query(ana, DatasetQuery(sql="SELECT max(close) FROM prices", as_of="2024-03-28")).result()
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

from strongroom.data.base import DATASET_NAME, DatasetStore, DatasetVersion, QueryLimits, QueryResult
from strongroom.data.sql import MAX_SQL_CHARS, check_select
from strongroom.errors import PermissionDenied, QueryError, StoreError, StrongroomError, WriteDenied
from strongroom.ingest.understand.redaction import redact_value
from strongroom.service.clock import Clocks, TimeInput, parse_instant
from strongroom.service.operations import Operations, Outcome
from strongroom.types import Principal, utcnow

__all__ = [
    "LOAD_MODES",
    "MAX_SQL_CHARS",
    "DatasetLoad",
    "DatasetQuery",
    "DatasetView",
    "Datasets",
    "dataset_record",
    "json_value",
    "readable",
    "result_record",
    "version_record",
]

#: how a load adds to a dataset: new rows (a row with an existing key corrects it), or all of it
LOAD_MODES = ("append", "replace")
_NAME = re.compile(DATASET_NAME)
T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class DatasetLoad:
    """A CSV or Parquet file to load as a new version of ``dataset``. ``acl``: who may read the
    dataset (all of it, at every time) from now on; ``valid_time_column``: when each row was
    true; ``key_columns``: what makes a row the same row (a later load corrects it).
    ``loaded_at``: when the load counts as made (None: now), for back-filling or replaying a
    history (admins only; not in the future, after the dataset's previous load; no zone: UTC)."""

    path: Path
    dataset: str
    acl: frozenset[str]
    valid_time_column: str
    key_columns: tuple[str, ...] = ()
    mode: str = "append"
    loaded_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class DatasetQuery:
    """One read-only SQL statement over the datasets the caller may read, at two clocks
    (strings as typed, datetimes or None: now). ``max_rows``: at most this many rows (default
    and ceiling: ``Settings.dataset_max_rows``)."""

    sql: str
    as_of: TimeInput = None
    known_at: TimeInput = None
    max_rows: int | None = None


@dataclass(frozen=True)
class DatasetView:
    """A dataset as a principal sees it at ``known_at``: the ACL that governs it (its newest
    version's) and its versions loaded by then, newest first."""

    name: str
    acl: frozenset[str]
    versions: tuple[DatasetVersion, ...]

    @property
    def current(self) -> DatasetVersion:
        """The newest version loaded by the view's ``known_at``."""
        return self.versions[0]


def readable(versions: Sequence[DatasetVersion], groups: frozenset[str], known_at: datetime) -> dict[str, DatasetView]:
    """Per dataset name, what ``groups`` see at ``known_at``: datasets whose newest version (at
    any time: it governs every time) they may read, with the versions loaded by ``known_at``.
    Pure. A dataset with no version loaded by then is absent, as it did not exist yet."""
    by_name: dict[str, list[DatasetVersion]] = {}
    for v in versions:
        by_name.setdefault(v.dataset, []).append(v)
    out: dict[str, DatasetView] = {}
    for name, loads in by_name.items():
        loads.sort(key=lambda v: v.version, reverse=True)
        governing = loads[0].acl
        if groups.isdisjoint(governing):
            continue
        known = tuple(v for v in loads if v.loaded_at <= known_at)
        if known:
            out[name] = DatasetView(name, governing, known)
    return out


@dataclass
class _Engine:
    """Runs the dataset store's loads and queries, noting a failure: its message may quote the
    data (a value that would not convert, a duplicate key), so the record keeps only its kind."""

    failed: StrongroomError | None = None

    def run(self, work: Callable[[], U]) -> U:
        try:
            return work()
        except StrongroomError as exc:
            self.failed = exc
            raise

    def detail(self, detail: str) -> str:
        if self.failed is None:
            return redact_value(detail)[0]  # a refusal may quote the SQL or the file name as typed
        return f"{type(self.failed).__name__} from the dataset store (its message, shown to the caller, may quote data)"


def _groups(acl: frozenset[str]) -> str:
    return ",".join(sorted(acl))


def _not_yours(name: str) -> WriteDenied:
    # the same whether or not the name is in use by a dataset the loader may not read
    return WriteDenied(
        f"refused: you may not load into dataset {name!r} (it does not exist as a dataset you may read); "
        "ask its owners to load it, or choose another --dataset name"
    )


class Datasets:
    """The dataset operations over one dataset store. Not thread-safe: the drivers call it
    from one thread at a time."""

    def __init__(self, ops: Operations, store: DatasetStore) -> None:
        self.ops = ops
        self.store = store

    def close(self) -> None:
        self.store.close()

    def _audited(
        self,
        principal: Principal,
        action: str,
        fields: dict[str, object],
        body: Callable[[], tuple[T, dict[str, object]]],
        engine: _Engine,
    ) -> Outcome[T]:
        """:meth:`Operations.run_audited`, with each record's detail as ``engine`` may keep it."""
        outcome = self.ops.run_audited(principal, action, fields, body)
        events = tuple(replace(e, detail=engine.detail(e.detail)) for e in outcome.events)
        return replace(outcome, events=events)

    def _visible(self, principal: Principal, known_at: datetime) -> dict[str, DatasetView]:
        return readable(self.store.versions(), principal.groups, known_at)

    # -- loading -----------------------------------------------------------------------------

    def load(self, principal: Principal, request: DatasetLoad) -> Outcome[DatasetVersion]:
        """Load ``request.path`` as a new version of ``request.dataset`` (ingesters), under the
        write rules above; audited either way (a refused load changes nothing)."""
        acl = frozenset(g.strip() for g in request.acl if g.strip())
        source = redact_value(request.path.name)[0]
        asked_at = {"loaded_at": request.loaded_at.isoformat()} if request.loaded_at is not None else {}
        fields: dict[str, object] = {
            "target": request.dataset,
            "filters": {"acl": sorted(acl), "mode": request.mode, "source": source, **asked_at},
        }

        def body() -> tuple[DatasetVersion, dict[str, object]]:
            self.ops.require(principal, "ingester")
            self._check_load(request, acl)
            loaded_at = None if request.loaded_at is None else self._check_loaded_at(principal, request.loaded_at)
            latest = self._writable(principal, request.dataset, acl)
            version = engine.run(
                lambda: self.store.load(
                    request.dataset,
                    request.path,
                    acl=acl,
                    valid_time_column=request.valid_time_column,
                    key_columns=request.key_columns,
                    mode=request.mode,
                    loaded_by=principal.name,
                    loaded_at=loaded_at,
                )
            )
            filters = {
                **asked_at,
                "acl": sorted(version.acl),
                "acl_before": sorted(latest.acl) if latest is not None else None,
                "mode": version.mode,
                "source": source,
                "version": version.version,
                "sha256": version.sha256,
                "rows": version.rows,
                "superseded": version.superseded,
                "valid_time_column": version.valid_time_column,
                "key_columns": list(version.key_columns),
            }
            detail = f"version {version.version}: {version.rows} rows ({version.superseded} earlier rows corrected)"
            if latest is not None and version.version == latest.version:
                detail = f"the same bytes as version {version.version}: nothing loaded"
            return version, {"filters": filters, "detail": detail}

        engine = _Engine()
        return self._audited(principal, "datasets.load", fields, body, engine)

    @staticmethod
    def _check_load(request: DatasetLoad, acl: frozenset[str]) -> None:
        if not _NAME.match(request.dataset):
            raise QueryError(
                f"dataset: {request.dataset!r} is not a dataset name (lower-case letters, digits and _, "
                "starting with a letter, at most 63 characters)"
            )
        if not acl:
            raise QueryError("acl: give at least one group")
        if request.mode not in LOAD_MODES:
            raise QueryError(f"mode: {request.mode!r} is not one of {', '.join(LOAD_MODES)}")
        if not request.valid_time_column.strip():
            raise QueryError("valid_time_column: name the column that says when each row was true")
        if not request.path.is_file():
            what = "a folder" if request.path.is_dir() else "not there"
            raise QueryError(f"{request.path}: {what}; give a CSV or Parquet file")

    @staticmethod
    def _check_loaded_at(principal: Principal, loaded_at: datetime) -> datetime:
        """An explicit load time rewrites what the platform says it knew when: admins only,
        never in the future (a datetime without a zone is UTC); the store refuses one that is
        not after the dataset's last load."""
        if "admin" not in principal.roles:
            raise PermissionDenied(
                "an explicit loaded_at (back-filling or replaying a history) needs the admin role; "
                "leave it out to load now"
            )
        moment = parse_instant(loaded_at, "loaded_at")
        assert moment is not None
        if moment > utcnow():
            raise QueryError(f"loaded_at {moment.isoformat()} is in the future; a load can be dated now or earlier")
        return moment

    def _writable(self, principal: Principal, name: str, acl: frozenset[str]) -> DatasetVersion | None:
        """The dataset's newest version (None for a new dataset), if ``principal`` may load into
        it with ``acl``: it may read the dataset, and only an admin changes who may."""
        loads = self.store.versions(name)
        if not loads:
            return None
        latest = max(loads, key=lambda v: v.version)
        current = latest.acl
        if not principal.may_read(current):
            raise _not_yours(name)
        if acl != current and "admin" not in principal.roles:
            raise WriteDenied(
                f"dataset {name!r} is readable by {_groups(current)}; this load would make it readable by "
                f"{_groups(acl)}. Load it with --acl {_groups(current)}, or have an admin who may read it load "
                "it with the new --acl (who may read a dataset changes for all of its history)"
            )
        return latest

    # -- reading -----------------------------------------------------------------------------

    def listing(self, principal: Principal, known_at: TimeInput = None) -> Outcome[list[DatasetView]]:
        """The datasets ``principal`` may read (readers), with their versions loaded by
        ``known_at`` (default: now), by name."""

        def body() -> tuple[list[DatasetView], dict[str, object]]:
            self.ops.require(principal, "reader")
            clocks = Clocks.parse(None, known_at)
            seen = self._visible(principal, clocks.applied()[1])
            views = [seen[name] for name in sorted(seen)]
            return views, {"filters": clocks.describe(), "detail": f"{len(views)} datasets"}

        return self._audited(
            principal, "datasets.list", {"filters": {"known_at": str(known_at or "")}}, body, _Engine()
        )

    def query(self, principal: Principal, request: DatasetQuery) -> Outcome[QueryResult]:
        """Run ``request.sql`` (one read-only SELECT) over the datasets ``principal`` may read at
        ``known_at``, seeing rows valid by ``as_of`` (readers). A dataset it may not read is
        refused before the engine runs, with the same message as one that does not exist."""
        asked = {"as_of": str(request.as_of or ""), "known_at": str(request.known_at or "")}
        fields: dict[str, object] = {"query": request.sql, "filters": {**asked, "max_rows": request.max_rows}}

        def body() -> tuple[QueryResult, dict[str, object]]:
            self.ops.require(principal, "reader")
            limits = self._limits(request)
            if not request.sql.strip():
                raise QueryError("sql: give one SELECT statement")
            if len(request.sql) > MAX_SQL_CHARS:
                raise QueryError(f"sql: at most {MAX_SQL_CHARS} characters")
            clocks = Clocks.parse(request.as_of, request.known_at)
            fields["filters"] = {**clocks.describe(), "max_rows": limits.max_rows}
            as_of, known_at = clocks.applied()
            seen = self._visible(principal, known_at)
            check_select(request.sql, sorted(seen))  # the checker refuses here, before the engine is asked
            result = engine.run(
                lambda: self.store.query(request.sql, sorted(seen), as_of=as_of, known_at=known_at, limits=limits)
            )
            self._entitled(result, seen)
            used = [[v.dataset, v.version, v.sha256] for v in result.datasets]
            extra = {"datasets": used, "rows": len(result.rows), "truncated": result.truncated}
            extra["elapsed_ms"] = round(result.elapsed_ms, 1)
            detail = f"{len(result.rows)} rows{' (truncated)' if result.truncated else ''}"
            return result, {"filters": {**clocks.describe(), "max_rows": limits.max_rows, **extra}, "detail": detail}

        engine = _Engine()
        return self._audited(principal, "datasets.query", fields, body, engine)

    def _limits(self, request: DatasetQuery) -> QueryLimits:
        s = self.ops.settings
        rows = s.dataset_max_rows if request.max_rows is None else request.max_rows
        if not 1 <= rows <= s.dataset_max_rows:
            raise QueryError(f"max_rows is 1 to {s.dataset_max_rows} (STRONGROOM_DATASET_MAX_ROWS)")
        return QueryLimits(max_rows=rows, timeout_s=s.dataset_query_timeout_s)

    @staticmethod
    def _entitled(result: QueryResult, seen: Mapping[str, DatasetView]) -> None:
        # the checker allowed only these names; this is a second lock on the same door
        for v in result.datasets:
            view = seen.get(v.dataset)
            if view is None or all(v.version != known.version for known in view.versions):
                raise StoreError("internal error: the dataset store read a dataset version outside the caller's view")


# -- JSON records (what `strongroom data ... --json` prints and /v1/datasets returns) ----------


def version_record(v: DatasetVersion) -> dict[str, object]:
    """One load of a dataset: when, by whom, its content hash, rows and columns."""
    return {
        "version": v.version,
        "loaded_at": v.loaded_at.isoformat(),
        "loaded_by": v.loaded_by,
        "sha256": v.sha256,
        "rows": v.rows,
        "superseded": v.superseded,
        "mode": v.mode,
        "source": v.source,
        "valid_time_column": v.valid_time_column,
        "key_columns": list(v.key_columns),
        "columns": [{"name": n, "type": t} for n, t in v.columns],
    }


def dataset_record(view: DatasetView) -> dict[str, object]:
    """A dataset as its reader sees it: its current shape and ACL, and its versions, newest first."""
    current = view.current
    return {
        "name": view.name,
        "acl": sorted(view.acl),
        "valid_time_column": current.valid_time_column,
        "key_columns": list(current.key_columns),
        "columns": [{"name": n, "type": t} for n, t in current.columns],
        "versions": [version_record(v) for v in view.versions],
    }


def json_value(value: object) -> object:
    """A cell as JSON can hold it: numbers and text as they are; decimals as exact text; times
    in ISO 8601; NaN and infinities as text; bytes as hex; lists and structs element-wise."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def result_record(result: QueryResult) -> dict[str, object]:
    """A query's answer: the SQL asked and run, the dataset versions that answered it, both
    clocks, the columns and rows (JSON values), and whether rows were cut at the limit."""
    return {
        "sql": result.sql,
        "executed_sql": result.executed_sql,
        "datasets": [
            {"name": v.dataset, "version": v.version, "sha256": v.sha256, "loaded_at": v.loaded_at.isoformat()}
            for v in result.datasets
        ],
        "as_of": result.as_of.isoformat(),
        "known_at": result.known_at.isoformat(),
        "columns": list(result.columns),
        "rows": [[json_value(c) for c in row] for row in result.rows],
        "row_count": len(result.rows),
        "truncated": result.truncated,
        "elapsed_ms": round(result.elapsed_ms, 1),
    }
