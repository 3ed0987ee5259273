"""ASOF JOIN for engines without it: each one rewritten as a LATERAL subquery.

DuckDB joins each left row to the latest right row at or before its time (``ASOF JOIN``);
PostgreSQL has no such join, so the PostgreSQL backend's :func:`~strongroom.data.sql.rewrite`
turns every ASOF JOIN of a checked query into the standard form, after the datasets were
replaced by their visible rows (so nothing is read that the checked query did not name)::

    FROM trades AS l ASOF JOIN prices AS r ON l.ticker = r.ticker AND l.day >= r.day
    FROM trades AS l CROSS JOIN LATERAL (SELECT * FROM prices AS r
        WHERE l.ticker = r.ticker AND l.day >= r.day ORDER BY r.day DESC LIMIT 1) AS r

``ASOF LEFT JOIN`` becomes ``LEFT JOIN LATERAL (...) ON TRUE`` (a left row without a match
is kept, with NULLs). The condition is DuckDB's: equalities (``=``, ``IS NOT DISTINCT FROM``)
and exactly one inequality between a right-side expression and a left-side one; the
inequality's direction says which right row is nearest (``>=``/``>`` of the left: the latest
before; ``<=``/``<``: the earliest after). Every column in it must name its table, as an
unqualified name inside the subquery would bind to the right side first.

>>> tree = sqlglot.parse_one("SELECT * FROM a l ASOF JOIN b r ON l.k = r.k AND l.t >= r.t", read="duckdb")
>>> asof_as_lateral(tree).sql("postgres")  # doctest: +SKIP
'SELECT * FROM a AS l CROSS JOIN LATERAL (SELECT * FROM b AS r WHERE l.k = r.k AND l.t >= r.t
ORDER BY r.t DESC LIMIT 1) AS r'
"""

from __future__ import annotations

from sqlglot import exp

from strongroom.errors import QueryError

__all__ = ["asof_as_lateral"]

_EQUALITIES = (exp.EQ, exp.NullSafeEQ)
_INEQUALITIES = (exp.GTE, exp.GT, exp.LTE, exp.LT)
# the right side's expression is below (<, <=: the latest first) or above the left's
_RIGHT_BELOW: dict[type[exp.Expression], bool] = {exp.GTE: True, exp.GT: True, exp.LTE: False, exp.LT: False}
_HOW = "write ASOF JOIN ... ON with equalities and one inequality between the two sides, e.g. l.day >= r.day"


def asof_as_lateral(tree: exp.Expression) -> exp.Expression:
    """``tree`` with every ASOF JOIN (at any depth) rewritten as a LATERAL subquery, in place.
    A QueryError says how to write a join that has no LATERAL equivalent here."""
    for join in list(tree.find_all(exp.Join)):
        if str(join.args.get("method") or "").upper() == "ASOF":
            join.replace(_lateral(join))
    return tree


def _lateral(join: exp.Join) -> exp.Join:
    right = join.this
    name = right.alias_or_name
    if join.args.get("using") or not isinstance(join.args.get("on"), exp.Expression):
        raise QueryError(f"ASOF JOIN {name} needs ON here (no USING): {_HOW}")
    side = str(join.args.get("side") or "").upper()
    if side not in ("", "LEFT") or join.args.get("kind"):
        raise QueryError(f"ASOF JOIN {name}: only ASOF JOIN and ASOF LEFT JOIN can run here")
    on: exp.Expression = join.args["on"]
    conditions = list(on.flatten()) if isinstance(on, exp.And) else [on]
    for condition in conditions:
        for column in condition.find_all(exp.Column):
            if not column.table:
                raise QueryError(f"ASOF JOIN {name}: name the table of column {column.name!r} in ON (e.g. r.day)")
    inequalities = [c for c in conditions if isinstance(c, _INEQUALITIES)]
    if len(inequalities) != 1 or any(not isinstance(c, _EQUALITIES + _INEQUALITIES) for c in conditions):
        raise QueryError(f"ASOF JOIN {name}: {_HOW}")
    nearest = _nearest(inequalities[0], name)
    body = (
        exp.select("*").from_(right.copy()).where(exp.and_(*(c.copy() for c in conditions))).order_by(nearest).limit(1)
    )
    lateral = exp.Lateral(this=exp.Subquery(this=body), alias=exp.TableAlias(this=exp.to_identifier(name)))
    if side == "LEFT":
        return exp.Join(this=lateral, side="LEFT", on=exp.true())
    return exp.Join(this=lateral, kind="CROSS")


def _nearest(inequality: exp.Expression, name: str) -> exp.Ordered:
    """How to order the right rows so the first is the match: by the right side's expression of
    ``inequality``, down when it must be below the left's, up when above."""
    sides = (inequality.this, inequality.expression)
    reads = [_tables(side) for side in sides]
    key = name.casefold()
    if reads[1] == {key} and key not in reads[0]:
        right, below = sides[1], _RIGHT_BELOW[type(inequality)]
    elif reads[0] == {key} and key not in reads[1]:
        right, below = sides[0], not _RIGHT_BELOW[type(inequality)]
    else:
        raise QueryError(f"ASOF JOIN {name}: the inequality compares {name}'s column with the other side's; {_HOW}")
    # NULLs first when descending: the order a backward scan of an ascending index gives (the
    # inequality keeps NULLs out anyway), so PostgreSQL reads one index entry per left row
    return exp.Ordered(this=right.copy(), desc=below, nulls_first=below)


def _tables(side: exp.Expression) -> set[str]:
    """The tables whose columns ``side`` reads (names as the engine compares them)."""
    return {c.table.casefold() for c in side.find_all(exp.Column)}
