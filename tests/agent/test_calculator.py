"""The agent's calculator: exact decimals, cited inputs in filing formats, and nothing but
arithmetic (no eval, no CPU burn, no exception other than QueryError)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from strongroom.agent.calculator import (
    MAX_EXPONENT,
    MAX_EXPRESSION_CHARS,
    MAX_MAGNITUDE,
    PRECISION,
    calculate,
    format_decimal,
    to_decimal,
)
from strongroom.errors import QueryError


def test_decimal_literals_are_exact_where_floats_are_not() -> None:
    c = calculate("0.1 + 0.2")
    assert c.value == Decimal("0.3")
    assert c.exact
    assert c.text == "0.1 + 0.2 = 0.3"


def test_inputs_are_read_as_filings_print_them_and_substituted_in_the_formula() -> None:
    c = calculate(
        "a + b + c + d + e",
        {"a": "1,234.5", "b": "(81.2)", "c": "12%", "d": "$1.5 million", "e": -3},
    )
    assert c.inputs == {
        "a": Decimal("1234.5"),
        "b": Decimal("-81.2"),
        "c": Decimal("0.12"),
        "d": Decimal("1500000"),
        "e": Decimal("-3"),
    }
    assert c.value == Decimal("1501150.42")
    assert c.formula == "1234.5 + (-81.2) + 0.12 + 1500000 + (-3)"


def test_named_functions() -> None:
    assert calculate("pct_change(80, 100)").value == 25
    assert calculate("pct_change(-80, -100)").value == -25  # relative to |old|: a bigger loss is a fall
    assert calculate("share(12, 48)").value == 25
    assert calculate("avg(1, 2, 3, 4)").value == Decimal("2.5")
    assert calculate("sum([1, 2, 3.5])").value == Decimal("6.5")
    assert calculate("min(3, -1, 2) + max(3, -1, 2)").value == 2
    assert calculate("abs(-4.5)").value == Decimal("4.5")
    assert calculate("round(2.345, 2)").value == Decimal("2.35")  # half up, as people round
    assert calculate("round(2.5)").value == 3
    assert calculate("round(1234.5, -2)").value == 1200
    assert calculate("round(2.345, 2)").exact  # rounding asked for is not a loss of exactness
    assert calculate("2 ** 10").value == 1024
    assert calculate("2 ** -2").value == Decimal("0.25")
    assert calculate("7 ** 0").value == 1


def test_an_inexact_result_says_so_and_keeps_the_context_precision() -> None:
    c = calculate("1 / 3")
    assert not c.exact
    assert c.text.startswith("1 / 3 ≈ 0.333")
    assert len(format_decimal(c.value).split(".")[1]) == PRECISION


@pytest.mark.parametrize(
    "expression",
    ["1 / 0", "1 / (2 - 2)", "pct_change(0, 5)", "share(1, 0)", "0 ** -1", "avg(a) / (a - a)"],
)
def test_division_by_zero_is_a_query_error(expression: str) -> None:
    with pytest.raises(QueryError, match="zero"):
        calculate(expression, {"a": "2"})


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("__import__('os').system('true')", "only these functions"),
        ("().__class__", "not allowed"),
        ("open('x')", "only these functions"),
        ("lambda: 1", "Lambda"),
        ("1 if 1 else 2", "IfExp"),
        ("1 < 2", "Compare"),
        ("1 and 2", "BoolOp"),
        ("'1' + '2'", "not a decimal number"),
        ("x[0]", "Subscript"),
        ("[1, 2]", "List"),
        ("10 % 3", "Mod"),
        ("10 // 3", "FloorDiv"),
        ("1 << 2", "LShift"),
        ("0x10", "not a decimal number"),
        ("1j", "not a decimal number"),
        ("True + 1", "not a decimal number"),
        ("round(1, ndigits=2)", "by position"),
        ("sum(*[1, 2])", "written out"),
        ("unknown + 1", "unknown name 'unknown'"),
        ("2 ** 0.5", "whole exponent"),
        ("", "empty"),
        ("1 +", "not valid arithmetic"),
        ("1\x00", "not valid arithmetic"),
    ],
)
def test_anything_but_arithmetic_is_refused_with_what_to_do(expression: str, words: str) -> None:
    with pytest.raises(QueryError, match=words):
        calculate(expression)


def test_bad_inputs_are_refused() -> None:
    for bad in ("twelve", "1,23", "", "1 2", True, None, float("nan"), [1]):
        with pytest.raises(QueryError):
            calculate("a", {"a": bad})
    with pytest.raises(QueryError, match="cannot name"):
        calculate("sum", {"sum": "1"})
    with pytest.raises(QueryError, match="cannot name"):
        calculate("1", {"a b": "1"})
    assert calculate("__class__ * 2", {"__class__": "2"}).value == 4  # a name is only a key of inputs
    assert to_decimal(0.1) == Decimal("0.1")  # a float by its shortest repr, not its binary value


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("9 ** 9 ** 9 ** 9", "whole exponent"),
        (f"2 ** {MAX_EXPONENT + 1}", "whole exponent"),
        ("(10 ** 30) * (10 ** 30)", f"10\\*\\*{MAX_MAGNITUDE}"),
        ("1e999 + 1", f"10\\*\\*{MAX_MAGNITUDE}"),
        ("-" * 40 + "1", "nests deeper"),
        ("(" * 240 + "1" + ")" * 240, "not valid arithmetic"),  # past the parser's own nesting limit
        ("+".join(["1"] * 120), "more than"),
        ("1" * (MAX_EXPRESSION_CHARS + 1), "characters"),
        ("sum(" + ",".join(["1"] * 101) + ")", "more than|at most"),
    ],
)
def test_size_limits_refuse_cpu_burning_expressions(expression: str, words: str) -> None:
    with pytest.raises(QueryError, match=words):
        calculate(expression)


# -- agreement with exact rational arithmetic (hypothesis) ---------------------------------

# An expression and its value as a Fraction (None: undefined, a division by zero), and the
# largest magnitude it passed through (the scale of any rounding error).
Expr = tuple[str, Fraction | None, Fraction]

_leaf_int = st.integers(0, 10**6).map(lambda i: (str(i), Fraction(i), Fraction(i)))
_leaf_dec = st.decimals(min_value=0, max_value=10**4, places=2, allow_nan=False, allow_infinity=False).map(
    lambda d: (str(d), Fraction(d), Fraction(d))
)
_leaf: st.SearchStrategy[Expr] = st.one_of(_leaf_int, _leaf_dec)
# divisors are literals of at least 0.01: division then cannot blow a rounding error up
_divisor: st.SearchStrategy[Expr] = st.decimals(min_value="0.01", max_value=10**4, places=2).map(
    lambda d: (str(d), Fraction(d), Fraction(d))
)


def _big(*values: Fraction | None) -> Fraction:
    return max((abs(v) for v in values if v is not None), default=Fraction(0))


def _op(a: Expr, op: str, b: Expr) -> Expr:
    x, y = a[1], b[1]
    value: Fraction | None = None
    if x is not None and y is not None:
        value = x + y if op == "+" else x - y if op == "-" else x * y
    return (f"({a[0]}) {op} ({b[0]})", value, max(a[2], b[2], _big(value)))


def _div(a: Expr, b: Expr) -> Expr:
    value = None if a[1] is None or b[1] is None else a[1] / b[1]
    return (f"({a[0]}) / {b[0]}", value, max(a[2], b[2], _big(value)))


def _pow(a: Expr, n: int) -> Expr:
    value = None if a[1] is None else a[1] ** n
    return (f"({a[0]}) ** {n}", value, max(a[2], _big(value)))


def _neg(a: Expr) -> Expr:
    return (f"-({a[0]})", None if a[1] is None else -a[1], a[2])


def _fn(name: str, args: list[Expr]) -> Expr:
    values = [a[1] for a in args]
    value: Fraction | None = None
    if all(v is not None for v in values):
        vs = [v for v in values if v is not None]
        if name == "sum":
            value = sum(vs, Fraction(0))
        elif name == "min":
            value = min(vs)
        elif name == "max":
            value = max(vs)
        elif name == "abs":
            value = abs(vs[0])
        elif name == "avg":
            value = sum(vs, Fraction(0)) / len(vs)
    return (f"{name}({', '.join(a[0] for a in args)})", value, max([_big(value), *(a[2] for a in args)]))


def _pct(a: Expr, b: Expr) -> Expr:  # b is a divisor leaf: never zero
    value = None if a[1] is None or b[1] is None else (a[1] - b[1]) / abs(b[1]) * 100
    return (f"pct_change({b[0]}, {a[0]})", value, max(a[2], b[2], _big(value)))


def _extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    return st.one_of(
        st.builds(_op, children, st.sampled_from(["+", "-", "*"]), children),
        st.builds(_div, children, _divisor),
        st.builds(_pow, children, st.integers(0, 3)),
        st.builds(_neg, children),
        st.builds(_pct, children, _divisor),
        st.builds(
            lambda n, a: _fn(n, a),
            st.sampled_from(["sum", "min", "max", "avg"]),
            st.lists(children, min_size=1, max_size=3),
        ),
        st.builds(lambda a: _fn("abs", [a]), children),
    )


expressions = st.recursive(_leaf, _extend, max_leaves=10)


@settings(deadline=None, max_examples=300)
@given(expressions)
def test_it_agrees_with_fraction_arithmetic(expr: Expr) -> None:
    text, exact, biggest = expr
    assume(exact is not None and biggest < 10**40 and len(text) <= MAX_EXPRESSION_CHARS)
    assert exact is not None
    c = calculate(text)
    got = Fraction(c.value)
    if c.exact:
        assert got == exact
    else:
        # each step rounds at PRECISION digits; errors scale with the largest value met
        assert abs(got - exact) <= Fraction(1, 10 ** (PRECISION - 12)) * max(Fraction(1), biggest)


_zero_divisor = st.just(("0", Fraction(0), Fraction(0)))


@settings(deadline=None, max_examples=100)
@given(expressions, expressions)
def test_a_division_by_an_exact_zero_is_always_a_query_error(a: Expr, b: Expr) -> None:
    text = f"({a[0]}) / (({b[0]}) - ({b[0]}))"
    assume(len(text) <= MAX_EXPRESSION_CHARS)
    with pytest.raises(QueryError):
        calculate(text)


_names = st.dictionaries(
    st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True),
    st.one_of(st.text(max_size=12), st.integers(), st.floats(), st.decimals(), st.booleans(), st.none()),
    max_size=3,
)


@settings(deadline=None, max_examples=400)
@given(st.text(max_size=120), _names)
def test_random_text_raises_nothing_but_query_error(text: str, inputs: dict[str, object]) -> None:
    try:
        calculate(text, inputs)
    except QueryError:
        pass


@settings(deadline=None, max_examples=400)
@given(st.from_regex(r"[0-9a-z_+\-*/(). ,%e]{0,120}", fullmatch=True), _names)
def test_random_arithmetic_like_text_raises_nothing_but_query_error(text: str, inputs: dict[str, object]) -> None:
    try:
        calculate(text, inputs)
    except QueryError:
        pass
