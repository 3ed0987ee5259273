"""Checked SQL over datasets: one read-only SELECT, only allow-listed syntax, only the caller's
datasets, rewritten to read each dataset's visible rows under a row limit.

Pure functions over sqlglot trees (no I/O): :func:`check_select` refuses anything but a single
read-only SELECT (``WITH ... SELECT`` and ``UNION`` of SELECTs are fine) built from an allow-list
of expression types, deny by default; :func:`rewrite` replaces every dataset a query names by
a subquery of its visible rows (aliased to the same name, so ``prices.close`` still binds) and
caps the rows at ``max_rows + 1`` so a caller can tell that it cut the answer. A dataset the
caller may not read gets the same refusal as one that does not exist.

>>> checked = check_select("SELECT close FROM prices WHERE ticker = 'ACME'", ["prices"])
>>> checked.datasets
('prices',)
>>> rewrite(checked, {"prices": "SELECT ticker, close FROM strongroom_data.prices"}, max_rows=10)
"SELECT close FROM (SELECT ticker, close FROM strongroom_data.prices) AS prices WHERE ticker = 'ACME' LIMIT 11"
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from strongroom.data.asof import asof_as_lateral
from strongroom.data.sql_limits import check_cost, reads_clock
from strongroom.errors import QueryError

__all__ = ["ALLOWED_FUNCTIONS", "MAX_SQL_CHARS", "CheckedSelect", "check_select", "rewrite"]

#: longest SQL accepted (an agent's query is a few hundred characters)
MAX_SQL_CHARS = 20_000

# Structure: the statement, its clauses, names and operators. Anything not named here or in
# ALLOWED_FUNCTIONS (DDL, DML, PRAGMA, SET, COPY, ATTACH, INTO, locks, LATERAL, UNNEST, table
# functions, parameters, struct and list syntax, sampling) is refused.
_STRUCTURE = (
    "Select Union Intersect Except With CTE Subquery From Join Where Group Having Qualify Order Ordered "
    "Limit Offset Distinct Window WindowSpec Filter WithinGroup IgnoreNulls RespectNulls Values Tuple "
    "GroupingSets Rollup Cube Column Identifier Star Literal Null Boolean Alias Paren Table TableAlias Var "
    "And Or Not Xor EQ NEQ GT GTE LT LTE NullSafeEQ NullSafeNEQ Is In Between Like ILike SimilarTo Exists Any All "
    "Add Sub Mul Div IntDiv Mod Neg DPipe Case If Cast TryCast DataType DataTypeParam Interval Extract Escape"
)
_FUNCTIONS = (
    # aggregates
    "Count CountIf Sum Avg Min Max Median Mode Stddev StddevPop StddevSamp Variance VariancePop Corr CovarPop "
    "CovarSamp ApproxDistinct ArgMax ArgMin AnyValue First Last GroupConcat ArrayAgg LogicalAnd LogicalOr "
    "PercentileCont PercentileDisc Quantile ApproxQuantile RegrSlope RegrIntercept RegrR2 "
    # window functions
    "RowNumber Rank DenseRank PercentRank CumeDist Ntile Lag Lead FirstValue LastValue NthValue "
    # arithmetic and math
    "Abs Ceil Floor Round Trunc Sqrt Cbrt Exp Ln Log Pow Sign Greatest Least Coalesce Nullif IsNan IsInf Pi "
    # strings
    "Lower Upper Length Substring Trim Concat ConcatWs Replace Left Right StrPosition Initcap Pad Reverse "
    "StartsWith Contains RegexpLike RegexpReplace RegexpExtract SplitPart Repeat MD5 "
    # dates and times
    "TimestampTrunc DateTrunc DateAdd DateSub DateDiff TimestampAdd TimestampSub TimestampDiff Year Month Day "
    "Quarter Week DayOfWeek DayOfWeekIso DayOfMonth DayOfYear Dayname Monthname LastDay DateFromParts "
    "StrToDate StrToTime TimeToStr TimeToUnix UnixToTime TsOrDsToDate Date TimeStrToTime"
)


# what CAST may produce: scalars (no JSON, blobs, lists, structs or catalog types like regclass)
_CAST_TYPES = frozenset(
    "TINYINT SMALLINT INT BIGINT INT128 UTINYINT USMALLINT UINT UBIGINT FLOAT DOUBLE DECIMAL TEXT VARCHAR CHAR "
    "NCHAR NVARCHAR DATE TIMESTAMP TIMESTAMPNTZ TIMESTAMPTZ TIMESTAMPLTZ TIME TIMETZ INTERVAL BOOLEAN".split()
)


def _types(names: str) -> frozenset[type[exp.Expression]]:
    # by name, so a sqlglot release that renames a class narrows the list instead of failing
    found = (getattr(exp, name, None) for name in names.split())
    return frozenset(t for t in found if isinstance(t, type) and issubclass(t, exp.Expression))


_ALLOWED_STRUCTURE = _types(_STRUCTURE)
#: the sqlglot function types a query may call (deny by default)
ALLOWED_FUNCTIONS = _types(_FUNCTIONS)
# functions sqlglot does not model (it parses them as Anonymous) that read nothing but their arguments
_ALLOWED_ANONYMOUS = frozenset({"date_part", "datepart", "product"})
_ALLOWED = _ALLOWED_STRUCTURE | ALLOWED_FUNCTIONS
_TABLE_ARGS = frozenset({"this", "alias"})
_CLOCK = (exp.CurrentDate, exp.CurrentTimestamp, exp.CurrentTime, exp.CurrentDatetime)
_SET_OPERATIONS = (exp.Union, exp.Intersect, exp.Except)


@dataclass(frozen=True)
class CheckedSelect:
    """A query :func:`check_select` accepted: the SQL as asked, its tree (DuckDB dialect; treat
    it as read-only, :func:`rewrite` works on a copy) and the datasets it reads, sorted."""

    sql: str
    tree: exp.Expression
    datasets: tuple[str, ...]


def check_select(sql: str, allowed: Collection[str]) -> CheckedSelect:
    """Parse ``sql`` (DuckDB dialect) and accept it only if it is one read-only SELECT made of
    allow-listed syntax that reads datasets in ``allowed`` and nothing else.

    Raises :class:`~strongroom.errors.QueryError` saying what to change. A dataset outside
    ``allowed`` is refused exactly like one that does not exist.

    >>> check_select("WITH last AS (SELECT * FROM rates) SELECT max(rate) FROM last", ["rates"]).datasets
    ('rates',)
    """
    tree = _parse(sql)
    check_cost(tree)  # depth first: what follows recurses over the tree
    for node in tree.walk():
        if isinstance(node, exp.Expression):  # every concrete node is one
            _check_node(node)
    names = sorted({name for _, name in _dataset_refs(tree)})
    permitted = {a.lower() for a in allowed}
    for name in names:
        if name not in permitted:
            yours = ", ".join(sorted(permitted)) or "none"
            raise QueryError(f"unknown dataset {_show(name)}; these are yours: {yours}")
    return CheckedSelect(sql=sql, tree=tree, datasets=tuple(names))


def rewrite(
    checked: CheckedSelect,
    views: Mapping[str, exp.Query | str],
    *,
    max_rows: int,
    dialect: str = "duckdb",
) -> str:
    """The SQL the engine runs: each dataset reference of ``checked`` replaced by its view (a
    SELECT of the rows visible to this query, SQL in the DuckDB dialect or a sqlglot tree),
    aliased to the name the query used, and at most ``max_rows + 1`` rows; generated in
    ``dialect`` ("duckdb" or "postgres"; for PostgreSQL each ASOF JOIN becomes a LATERAL
    subquery, :mod:`strongroom.data.asof`). A construct the target dialect lacks is a QueryError."""
    if max_rows < 0:
        raise ValueError("max_rows must be 0 or more")
    tree = checked.tree.copy()
    for table, name in _dataset_refs(tree):
        if name not in views:
            raise QueryError(f"unknown dataset {_show(name)}")
        view = views[name]
        body = sqlglot.parse_one(view, read="duckdb") if isinstance(view, str) else view.copy()
        alias = table.args.get("alias")
        alias = alias.copy() if alias is not None else exp.TableAlias(this=table.this.copy())
        table.replace(exp.Subquery(this=body, alias=alias))
    tree = _limited(tree, max_rows + 1)
    if dialect == "postgres":
        _numeric_rounding(tree)
        asof_as_lateral(tree)  # after the views are in: nothing moves outside what was checked
    try:
        return tree.sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise QueryError(f"this query cannot run on {dialect}: {exc}; write it in plain SQL") from exc


# -- checking ------------------------------------------------------------------------------


def _parse(sql: str) -> exp.Expression:
    if not sql.strip():
        raise QueryError("the query is empty: write one SELECT statement")
    if len(sql) > MAX_SQL_CHARS:
        raise QueryError(f"the query is {len(sql):,} characters, over {MAX_SQL_CHARS:,}: ask a shorter one")
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb", error_level=ErrorLevel.RAISE) if s is not None]
    except RecursionError as exc:
        raise QueryError("the query is nested too deeply: flatten it (use WITH for the steps)") from exc
    except SqlglotError as exc:
        raise QueryError(f"the query is not valid SQL: {_first_line(exc)}; write one SELECT statement") from exc
    except Exception as exc:  # sqlglot's parser can trip over garbage (AttributeError, ValueError, ...)
        raise QueryError("the query is not valid SQL: write one SELECT statement") from exc
    if len(statements) != 1:
        raise QueryError(f"the query holds {len(statements)} statements: send exactly one SELECT")
    tree = statements[0]
    if not isinstance(tree, (exp.Select, *_SET_OPERATIONS)):
        kind = "a command" if isinstance(tree, exp.Command) else type(tree).__name__.upper()
        raise QueryError(f"only SELECT queries are allowed, not {kind}: datasets are read-only here")
    return tree


def _check_node(node: exp.Expression) -> None:
    if isinstance(node, exp.Anonymous):
        if node.name.lower() not in _ALLOWED_ANONYMOUS:
            raise QueryError(
                f"function {_show(node.name)} is not allowed: use aggregates, arithmetic, math, string, "
                "date and time functions, CASE, CAST and window functions"
            )
        return
    if isinstance(node, _CLOCK) or reads_clock(node):
        raise QueryError(
            "the query reads the clock (current_date, now()): write the date as a literal, e.g. "
            "DATE '2024-03-28'; the query already sees the data as of its as_of date"
        )
    if isinstance(node, exp.Table):
        _check_table(node)
    elif isinstance(node, exp.Select) and node.args.get("kind"):
        raise QueryError(f"SELECT AS {node.args['kind']} is not allowed: write a plain SELECT")
    elif isinstance(node, exp.With) and node.args.get("recursive"):
        raise QueryError("recursive WITH is not allowed: write the query without RECURSIVE")
    elif isinstance(node, exp.DataType) and getattr(node.this, "name", None) not in _CAST_TYPES:
        raise QueryError(
            f"CAST to {_show(node.sql())} is not allowed: cast to numbers, text, booleans, dates, timestamps "
            "or intervals"
        )
    elif isinstance(node, exp.Column) and (node.args.get("db") or node.args.get("catalog")):
        raise QueryError(f"column {_show(node.sql())} names a schema: write dataset.column or column")
    if type(node) not in _ALLOWED:
        if isinstance(node, exp.Func):
            raise QueryError(
                f"function {_show(node.sql_name().lower())} is not allowed: use aggregates, arithmetic, math, "
                "string, date and time functions, CASE, CAST and window functions"
            )
        raise QueryError(
            f"{_show(type(node).__name__)} is not allowed in a query: only a read-only SELECT over your datasets "
            "(no table functions, files, settings or system tables)"
        )


def _check_table(table: exp.Table) -> None:
    if not isinstance(table.this, exp.Identifier):
        raise QueryError(
            "table functions are not allowed (no file, URL or generated tables): select FROM one of your datasets"
        )
    if table.args.get("db") or table.args.get("catalog"):
        raise QueryError(f"unknown dataset {_show(table.sql())}: name a dataset without a schema")
    extra = sorted(k for k, v in table.args.items() if v and k not in _TABLE_ARGS)
    if extra:
        raise QueryError(f"{_show(table.name)}: {', '.join(extra)} is not allowed on a dataset; select from it plainly")


def _dataset_refs(tree: exp.Expression) -> list[tuple[exp.Table, str]]:
    """Every table reference that names a dataset (not a CTE in scope), with its lower-case name."""
    found: list[tuple[exp.Table, str]] = []
    _collect(tree, frozenset(), found)
    return found


def _collect(node: exp.Expression, ctes: frozenset[str], found: list[tuple[exp.Table, str]]) -> None:
    # A CTE is visible to the CTEs after it and to the body of the statement that holds it:
    # exactly where the engine resolves it, so a CTE never hides a dataset it shadows elsewhere.
    with_ = node.args.get("with_", node.args.get("with"))
    if isinstance(with_, exp.With):
        scope = set(ctes)
        for cte in with_.expressions:
            _collect(cte.this, frozenset(scope), found)
            scope.add(cte.alias_or_name.lower())
        ctes = frozenset(scope)
    for key, value in node.args.items():
        if key in ("with_", "with"):
            continue
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, exp.Table) and isinstance(child.this, exp.Identifier):
                name = child.name.lower()
                if name not in ctes:
                    found.append((child, name))
            elif isinstance(child, exp.Expression):
                _collect(child, ctes, found)


# -- rewriting -----------------------------------------------------------------------------


def _limited(tree: exp.Expression, cap: int) -> exp.Expression:
    limit = tree.args.get("limit")
    if limit is None:
        tree.set("limit", exp.Limit(expression=exp.Literal.number(cap)))
        return tree
    value = limit.expression
    if isinstance(value, exp.Literal) and value.is_int and not limit.args.get("limit_options"):
        limit.set("expression", exp.Literal.number(min(int(value.this), cap)))
        return tree
    inner = exp.Subquery(this=tree, alias=exp.TableAlias(this=exp.to_identifier("limited")))
    return exp.select("*").from_(inner).limit(cap)


def _numeric_rounding(tree: exp.Expression) -> None:
    # PostgreSQL rounds to n places only a numeric (round(double precision, int) does not exist)
    for node in list(tree.find_all(exp.Round)):
        if node.args.get("decimals") is not None:
            node.set("this", exp.cast(node.this.copy(), exp.DataType.build("DECIMAL")))


def _show(text: str, limit: int = 64) -> str:
    """A name from the query, safe to echo: quoted, control characters escaped, cut short."""
    shown = repr(text[:limit])
    return shown + ("..." if len(text) > limit else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
