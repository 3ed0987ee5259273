"""What one checked query may cost before the engine sees it: how deep its expressions nest, and
how much its text functions may grow a value. Pure functions over sqlglot trees, called by
:func:`strongroom.data.sql.check_select`.

The engines bound a query's rows and time, and DuckDB its buffers, but not a scalar function's
result: ``repeat('x', 1e9)``, ``lpad`` to a billion characters or a ``replace`` whose
replacement is long make one cell of gigabytes inside a single call, which neither the time
limit (checked between batches of rows) nor the memory limit (buffers only) can stop. A window
over ``string_agg``/``array_agg`` makes one such cell per row (a frame of n rows is n values).
So the checker refuses them up front:

- expressions nest at most :data:`MAX_DEPTH` levels (sqlglot's walk and the engines recurse);
- ``repeat`` takes a literal count and ``lpad``/``rpad`` a literal length; ``replace`` and
  ``regexp_replace`` a literal replacement; together they may grow a value at most
  :data:`MAX_GROWTH` times (the product over the whole statement, so CTEs cannot chain them);
- ``string_agg``/``array_agg`` are aggregates, never window functions;
- names DuckDB resolves to the machine's clock when no column has them (``"current_date"``
  quoted is still today) are clock reads, like ``current_date`` itself; so is a string that
  PostgreSQL reads as one when it becomes a date or time (``'now'``, ``'today'``,
  ``'tomorrow 09:00'``, ``'yesterday'``: in a CAST, a typed literal or ``day < 'today'``).

>>> import sqlglot
>>> check_cost(sqlglot.parse_one("SELECT replace(name, '&', 'and') FROM firms", read="duckdb"))
>>> check_cost(sqlglot.parse_one("SELECT repeat(name, 10000) FROM firms", read="duckdb"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
strongroom.errors.QueryError: repeat() takes a literal count of at most 1000: ...
"""

from __future__ import annotations

import re

from sqlglot import exp

from strongroom.errors import QueryError

__all__ = ["CLOCK_NAMES", "CLOCK_WORDS", "MAX_DEPTH", "MAX_GROWTH", "check_cost", "reads_clock"]

#: the deepest a query's expression tree may be (a chain of 250 ORs or UNIONs is deeper than any
#: real query; Python's recursion, sqlglot's and the engines' run out past about a thousand)
MAX_DEPTH = 250
#: the most the text functions of one query may multiply a value's length by, all together
MAX_GROWTH = 1000
#: names DuckDB reads as the clock when no column in scope has them, quoted or not
CLOCK_NAMES = frozenset({"current_date", "current_time", "current_timestamp", "localtime", "localtimestamp"})
#: words PostgreSQL's date and time input reads as the clock, in any case, with a time or not
CLOCK_WORDS = re.compile(r"\b(?:now|today|tomorrow|yesterday)\b", re.IGNORECASE)
_LISTS = (exp.GroupConcat, exp.ArrayAgg)
# bound once: an attribute of sqlglot's expression module costs a lookup each time
_WINDOW, _LITERAL, _REPEAT, _PAD = exp.Window, exp.Literal, exp.Repeat, exp.Pad
_REPLACES = (exp.Replace, exp.RegexpReplace)
_GROWING = (_REPEAT, _PAD, *_REPLACES)


def reads_clock(node: exp.Expr) -> bool:
    """Whether ``node`` is a column reference the engine would answer with the clock."""
    return isinstance(node, exp.Column) and not node.table and node.name.lower() in CLOCK_NAMES


def check_cost(tree: exp.Expr) -> None:
    """Refuse a query whose depth or text growth is past the limits above (a QueryError that
    says what to write instead)."""
    growth = 1
    stack = [(tree, 1)]  # one pass, without recursion: the tree may be arbitrarily deep
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise QueryError(
                f"the query is nested too deeply (over {MAX_DEPTH} levels): flatten it (use IN (...) for a list "
                "of values, WITH for the steps)"
            )
        if isinstance(node, _WINDOW):
            _check_window(node)
        elif isinstance(node, _LITERAL) and node.is_string and (word := CLOCK_WORDS.search(node.this)):
            raise QueryError(
                f"the text {node.this[:40]!r} holds {word.group()!r}, which PostgreSQL reads as the clock when it "
                "becomes a date or time: write the date itself, e.g. DATE '2024-03-28' (the query already sees the "
                "data as of its as_of date)"
            )
        elif isinstance(node, _GROWING):
            growth *= _growth(node)
        if growth > MAX_GROWTH:
            raise QueryError(
                f"the query's repeat, lpad/rpad and replace calls could make a value {growth:,} times longer "
                f"(at most {MAX_GROWTH:,}): use fewer of them or shorter counts and replacements"
            )
        stack.extend((child, depth + 1) for child in node.iter_expressions())


def _check_window(window: exp.Window) -> None:
    for node in window.this.walk():
        if isinstance(node, exp.Query | exp.Subquery):
            continue
        if isinstance(node, _LISTS):
            name = "string_agg" if isinstance(node, exp.GroupConcat) else "array_agg"
            raise QueryError(
                f"{name}() is not allowed as a window function (each row would hold its whole frame): "
                "aggregate with GROUP BY instead"
            )


def _count(node: exp.Expr | None, function: str, what: str) -> int:
    if isinstance(node, exp.Literal) and node.is_int and 0 <= int(node.this) <= MAX_GROWTH:
        return max(1, int(node.this))
    raise QueryError(
        f"{function}() takes a literal {what} of at most {MAX_GROWTH}: write the number itself, e.g. {function}(x, 10)"
    )


def _growth(node: exp.Expr) -> int:
    """How many times ``node`` may lengthen its input, at most (1 for everything else)."""
    if isinstance(node, _REPEAT):
        return _count(node.args.get("times"), "repeat", "count")
    if isinstance(node, _PAD):
        return _count(node.args.get("expression"), "lpad" if node.args.get("is_left") else "rpad", "length")
    if isinstance(node, _REPLACES):
        replacement = node.args.get("replacement")
        if not (isinstance(replacement, exp.Literal) and replacement.is_string):
            name = "regexp_replace" if isinstance(node, exp.RegexpReplace) else "replace"
            raise QueryError(f"{name}() takes a literal replacement: write the text itself, e.g. {name}(x, '&', 'and')")
        # each match (even an empty one, at every position) becomes the replacement, whose
        # back-references are at most the whole input each
        return len(replacement.this) + 1 if replacement.this else 1
    return 1
