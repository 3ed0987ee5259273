"""The commands about structured datasets: load a CSV or Parquet file, list what you may read,
query it with SQL at two clocks (:mod:`strongroom.service.datasets` decides and audits).

    strongroom data load prices.csv --dataset prices --acl research --valid-time-column day --key ticker,day
    strongroom data load fix.csv --dataset prices --acl research --valid-time-column day --key ticker \
        --loaded-at 2024-01-06T06:00:00Z       # an admin replaying a history
    strongroom data list --groups research
    strongroom data query "SELECT ticker, max(close) FROM prices GROUP BY ticker" --as-of 2024-03-28
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from strongroom.cli.common import (
    AsOfOpt,
    GroupsOpt,
    HomeOpt,
    JsonOpt,
    KnownAtOpt,
    UserOpt,
    emit,
    err,
    exits_on_error,
    platform_session,
    say,
)
from strongroom.service.clock import parse_instant
from strongroom.service.datasets import (
    DatasetLoad,
    DatasetQuery,
    dataset_record,
    json_value,
    result_record,
    version_record,
)
from strongroom.service.requests import parse_groups

__all__ = ["data_app"]

data_app = typer.Typer(
    help="Structured datasets (prices, rates, positions): load CSV or Parquet, list them, query them with SQL.",
    no_args_is_help=True,
)


@data_app.command("load")
def load_cmd(
    path: Annotated[Path, typer.Argument(help="A CSV or Parquet file.")],
    dataset: Annotated[str, typer.Option("--dataset", help="The dataset's name (lower-case, digits, _).")],
    acl: Annotated[
        str,
        typer.Option(
            "--acl",
            help="Groups who may read the dataset, comma-separated; it applies to all of its history. Loading "
            "into an existing dataset keeps its ACL (an admin may change it).",
        ),
    ],
    valid_time_column: Annotated[
        str, typer.Option("--valid-time-column", help="The column that says when each row was true (a date).")
    ],
    key: Annotated[
        str | None,
        typer.Option("--key", help="Columns that identify a row, comma-separated: a later load corrects it."),
    ] = None,
    mode: Annotated[
        str, typer.Option("--mode", help="append: add rows (and corrections); replace: this file is all of it.")
    ] = "append",
    loaded_at: Annotated[
        str | None,
        typer.Option(
            "--loaded-at",
            help="Date the load in the past (admins; back-filling or replaying a history): ISO datetime (no zone: "
            "UTC) or DATE (midnight UTC); after the dataset's last load, never in the future.",
        ),
    ] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load a file as a new version of a dataset (needs the ingester role; recorded in the audit log)."""
    with exits_on_error():
        keys = tuple(k.strip() for k in (key or "").split(",") if k.strip())
        when = parse_instant(loaded_at, "--loaded-at", bare_date="start")
        request = DatasetLoad(path, dataset, parse_groups(acl, "--acl"), valid_time_column, keys, mode, when)
    with platform_session(home, user, groups, create=True) as (platform, principal):
        version = platform.load_dataset(principal, request)
    record = {"dataset": version.dataset, "acl": sorted(version.acl), **version_record(version)}
    if as_json:
        return emit(record, as_json)
    say(
        f"{version.dataset} version {version.version}: {version.rows} rows from {version.source} "
        f"({version.superseded} earlier rows corrected), readable by {','.join(sorted(version.acl))}, "
        f"sha256 {version.sha256[:12]}"
    )


@data_app.command("list")
def list_cmd(
    known_at: KnownAtOpt = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the datasets you may read, with their versions (recorded in the audit log)."""
    with platform_session(home, user, groups) as (platform, principal):
        views = platform.datasets(principal, known_at)
    if as_json:
        return emit([dataset_record(v) for v in views], as_json)
    rows = [{"dataset": v.name, "version": v.current.version, "rows": v.current.rows,
             "loaded": v.current.loaded_at.isoformat()[:19], "valid time": v.current.valid_time_column,
             "columns": ",".join(n for n, _ in v.current.columns), "acl": ",".join(sorted(v.acl))}
            for v in views]  # fmt: skip
    emit(rows, as_json, title="datasets you may read", empty="No datasets you may read.")


@data_app.command("query")
def query_cmd(
    sql: Annotated[str, typer.Argument(help="One SELECT statement over the datasets you may read.")],
    as_of: AsOfOpt = None,
    known_at: KnownAtOpt = None,
    max_rows: Annotated[
        int | None, typer.Option("--max-rows", help="At most this many rows (default STRONGROOM_DATASET_MAX_ROWS).")
    ] = None,
    user: UserOpt = None,
    groups: GroupsOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run read-only SQL over the datasets you may read: rows valid by --as-of, as known at
    --known-at (recorded in the audit log, without the rows)."""
    request = DatasetQuery(sql=sql, as_of=as_of, known_at=known_at, max_rows=max_rows)
    with platform_session(home, user, groups) as (platform, principal):
        result = platform.query_datasets(principal, request)
    if as_json:
        return emit(result_record(result), as_json)
    names = [f"{c}" if c not in result.columns[:i] else f"{c} ({i + 1})" for i, c in enumerate(result.columns)]
    emit([dict(zip(names, map(json_value, row), strict=True)) for row in result.rows], False, empty="(no rows)")
    used = ", ".join(f"{v.dataset} v{v.version} ({v.sha256[:12]})" for v in result.datasets) or "no dataset"
    cut = f"; cut at {len(result.rows)} rows (--max-rows)" if result.truncated else ""
    say(f"{len(result.rows)} rows from {used}, as of {result.as_of.isoformat()}, "
        f"known at {result.known_at.isoformat()}{cut}", err)  # fmt: skip
