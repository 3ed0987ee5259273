"""The agent's data tools: the datasets a principal may read, read-only SQL over them, an as-of
join built from checked identifiers, and exact arithmetic.

Every query goes through the application layer's dataset query (its SQL checked against the
datasets the principal may read before the engine runs; rows limited to those valid at the
run's ``as_of`` as known at its ``known_at``; engine row and time limits). The as-of join
never pastes text into SQL: its dataset and column names must be among those
``list_datasets`` gives, and its ``where`` is parsed as one boolean over the left dataset's
columns, then the whole statement is built as a sqlglot tree and checked like any query.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import SqlglotError

from strongroom.agent.base import Evidence, ToolOutput
from strongroom.agent.calculator import calculate as evaluate
from strongroom.agent.calculator import format_decimal
from strongroom.data.base import QueryResult
from strongroom.errors import QueryError
from strongroom.service.datasets import DatasetQuery, DatasetView, json_value
from strongroom.service.tool_args import AsofJoinArgs, CalculateArgs, ListDatasetsArgs, QueryDataArgs
from strongroom.service.tool_backends import ToolContext
from strongroom.service.tool_output import Done, clip, fit, row_numbers, rows_text

__all__ = ["asof_join", "asof_sql", "calculate", "list_datasets", "query_data"]

_SQL_CHARS = 2_000  # of the executed SQL shown to the model
_EVIDENCE_CHARS = 8_000


def _visible(ctx: ToolContext) -> dict[str, DatasetView]:
    return {v.name: v for v in ctx.backend.datasets(ctx.principal, ctx.known_at)}


def list_datasets(ctx: ToolContext, _args: ListDatasetsArgs) -> Done:
    """The datasets the principal may read at the run's known-at time, newest version each."""
    views = sorted(_visible(ctx).values(), key=lambda v: v.name)
    listed: list[object] = []
    for view in views:
        v = view.current
        listed.append(
            {
                "name": view.name,
                "columns": [{"name": n, "type": t} for n, t in v.columns],
                "valid_time_column": v.valid_time_column,
                "key_columns": list(v.key_columns),
                "version": v.version,
                "sha256": v.sha256,
                "loaded_at": v.loaded_at.isoformat(),
            }
        )
    content, _ = fit({"datasets": listed, **ctx.clocks()}, "datasets", "datasets", "query one you know by name")
    facts: dict[str, object] = {"datasets": [[v.name, v.current.version] for v in views]}
    # the schemas come from entitled datasets: their evidence carries the datasets' clearance
    used = [[v.name, v.current.version, v.current.sha256] for v in views]
    schemas = "; ".join(f"{v.name}: {', '.join(n for n, _ in v.current.columns)}" for v in views)
    evidence = (Evidence("schema", {"datasets": used}, clip(schemas, _EVIDENCE_CHARS)[0]),) if views else ()
    return Done(ToolOutput(content, evidence), f"{len(views)} datasets", facts=facts)


def _answer(ctx: ToolContext, result: QueryResult) -> Done:
    """A query result as the model reads it (rows cut to fit) and as evidence (the rows shown)."""
    rows = [[json_value(c) for c in row] for row in result.rows]
    versions = [{"name": v.dataset, "version": v.version, "sha256": v.sha256} for v in result.datasets]
    content: dict[str, object] = {
        "columns": list(result.columns),
        "rows": rows,
        "row_count": len(rows),
        "truncated": result.truncated,
        "datasets": versions,
        "executed_sql": clip(result.executed_sql, _SQL_CHARS)[0],
        "as_of": result.as_of.isoformat(),
        "known_at": result.known_at.isoformat(),
    }
    if result.truncated:
        content["note"] = f"more rows matched than the {len(rows)} returned; aggregate, filter or raise max_rows"
    content, kept = fit(content, "rows", "rows", "aggregate or filter in SQL, or lower max_rows")
    shown = result.rows[:kept]
    text, _ = rows_text(result.columns, shown, _EVIDENCE_CHARS)
    used = [[v.dataset, v.version, v.sha256] for v in result.datasets]
    ref = {
        "sql": result.sql,
        "executed_sql": result.executed_sql,
        "datasets": used,
        "as_of": result.as_of.isoformat(),
        "known_at": result.known_at.isoformat(),
        "rows": len(result.rows),
        "truncated": result.truncated,
    }
    evidence = Evidence("query", ref, text, row_numbers(shown))
    detail = f"{len(result.rows)} rows{' (truncated)' if result.truncated else ''}"
    return Done(ToolOutput(content, (evidence,)), detail, facts={"datasets": used, "rows": len(result.rows)})


def _query(ctx: ToolContext, sql: str, max_rows: int) -> QueryResult:
    request = DatasetQuery(sql=sql, as_of=ctx.as_of, known_at=ctx.known_at, max_rows=max_rows)
    return ctx.backend.query_datasets(ctx.principal, request)


def query_data(ctx: ToolContext, args: QueryDataArgs) -> Done:
    """One checked, read-only SELECT over the principal's datasets at the run's clocks."""
    return _answer(ctx, _query(ctx, args.sql, args.max_rows))


# -- asof_join ------------------------------------------------------------------------------


def _dataset(views: dict[str, DatasetView], name: str) -> DatasetView:
    view = views.get(name)
    if view is None:  # the same words as the SQL checker's: absent and not yours look alike
        raise QueryError(f"unknown dataset {name[:64]!r}; these are yours: {', '.join(sorted(views)) or 'none'}")
    return view


def _column(view: DatasetView, name: str, what: str) -> str:
    columns = [n for n, _ in view.current.columns]
    if name not in columns:
        raise QueryError(
            f"asof_join: {what} {name!r} is not a column of {view.name} (its columns: {', '.join(columns)})"
        )
    return name


def _col(name: str, table: str) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _where(text: str, left: DatasetView) -> exp.Expr:
    """``text`` as one boolean over ``left``'s columns, each column bound to the left side."""
    try:
        condition = exp.condition(text, dialect="duckdb")
    except (SqlglotError, ValueError) as exc:
        raise QueryError(f"asof_join: where {text[:80]!r} is not one SQL boolean expression; e.g. qty > 100") from exc
    if any(isinstance(n, exp.Query | exp.Subquery | exp.Star | exp.Table) for n in condition.walk()):
        raise QueryError("asof_join: where is a boolean over the left dataset's columns; no subqueries")
    for column in list(condition.find_all(exp.Column)):
        if column.table and column.table not in (left.name, "l"):
            raise QueryError(f"asof_join: where may name only {left.name}'s columns, not {column.sql()!r}")
        column.replace(_col(_column(left, column.name, "where names"), "l"))
    return condition


def asof_sql(left: DatasetView, right: DatasetView, args: AsofJoinArgs) -> str:
    """The ASOF JOIN of ``args`` over two datasets, every name checked against their columns
    and named by its side (``l``, ``r``), so the PostgreSQL backend can run it as a LATERAL
    subquery (:mod:`strongroom.data.asof`)."""
    if left.name == right.name:
        raise QueryError("asof_join: left and right are the same dataset; use query_data for a self-join")
    for b in args.by:
        _column(left, b, "by column")
        _column(right, b, "by column")
    left_time = _column(left, args.left_time or left.current.valid_time_column, "left_time")
    right_time = _column(right, args.right_time or right.current.valid_time_column, "right_time")
    taken = {*args.by, right_time}
    bring = list(args.columns) or [n for n, _ in right.current.columns if n not in taken]
    left_names = {n for n, _ in left.current.columns}
    picked: list[exp.Expr] = [exp.Column(this=exp.Star(), table=exp.to_identifier("l"))]
    for c in dict.fromkeys(bring):
        _column(right, c, "column")
        out = f"{right.name}_{c}" if c in left_names else c
        picked.append(exp.alias_(_col(c, "r"), out, quoted=True))
    on = exp.and_(
        *(exp.EQ(this=_col(b, "l"), expression=_col(b, "r")) for b in args.by),
        exp.GTE(this=_col(left_time, "l"), expression=_col(right_time, "r")),
    )
    query = (
        exp.select(*picked)
        .from_(exp.Table(this=exp.to_identifier(left.name), alias=exp.TableAlias(this=exp.to_identifier("l"))))
        .join(
            exp.Table(this=exp.to_identifier(right.name), alias=exp.TableAlias(this=exp.to_identifier("r"))),
            on=on,
            join_type="ASOF",
        )
        .order_by(*(_col(b, "l") for b in args.by), _col(left_time, "l"))
    )
    if args.where:
        query = query.where(_where(args.where, left))
    return query.sql(dialect="duckdb")


def asof_join(ctx: ToolContext, args: AsofJoinArgs) -> Done:
    """Each left row with the latest right row at or before its time, through query_data's checks."""
    views = _visible(ctx)
    sql = asof_sql(_dataset(views, args.left), _dataset(views, args.right), args)
    return _answer(ctx, _query(ctx, sql, args.max_rows))


# -- calculate ------------------------------------------------------------------------------


def calculate(_ctx: ToolContext, args: CalculateArgs) -> Done:
    """The exact decimal value of an expression over named numbers, with its formula."""
    result = evaluate(args.expression, args.variables)
    value = format_decimal(result.value)
    content = {"value": value, "formula": result.formula, "exact": result.exact, "text": result.text}
    inputs = {k: format_decimal(v) for k, v in result.inputs.items()}
    ref = {"expression": result.expression, "inputs": inputs, "value": value}
    evidence = Evidence("calculation", ref, result.text, (value,))
    return Done(ToolOutput(content, (evidence,)), "calculated")
