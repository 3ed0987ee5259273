"""The agent's calculator: exact decimal arithmetic over cited numbers, without ``eval``.

An expression is parsed with :mod:`ast` and only these are evaluated: numbers written in
decimal (read as :class:`~decimal.Decimal` from their source text, so ``0.1`` is exactly one
tenth), names bound in ``inputs``, ``+ - * /``, ``**`` with an integer exponent of at most
:data:`MAX_EXPONENT`, unary ``-``/``+``, parentheses and the functions of :data:`FUNCTIONS`::

    >>> c = calculate("pct_change(q2, q3)", {"q2": "81,797", "q3": "$89,498"})
    >>> c.text
    'pct_change(81797, 89498) ≈ 9.414770712862329914300035453622994'

An input may be written as a filing prints it: ``"1,234.5"``, ``"(81.2)"`` (accounting's
negative), ``"12%"`` (0.12), ``"$81.8 billion"`` (81,800,000,000). In the expression itself
numbers are plain (``1234.5``: a comma there separates a function's arguments).

``pct_change(old, new)`` is ``(new - old) / |old| * 100`` and ``share(part, whole)`` is
``part / whole * 100``: both are in percent, as answers state them. ``round(x, n)`` rounds
half up; ``avg``, ``min``, ``max`` and ``sum`` take numbers or one list of them.

Everything is computed at :data:`PRECISION` significant digits; ``exact`` says whether any
step had to round (1/3 does). Division by zero, an unknown name, anything else in the
expression, or going past a size limit (:data:`MAX_EXPRESSION_CHARS`, :data:`MAX_NODES`,
:data:`MAX_DEPTH`, :data:`MAX_EXPONENT`, results beyond 10**:data:`MAX_MAGNITUDE`) raises
:class:`~strongroom.errors.QueryError` with what to change, so a model can fix its call,
and nothing can be made to burn CPU.
"""

from __future__ import annotations

import ast
import decimal
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from strongroom.agent.numbers import parse_figure
from strongroom.errors import QueryError

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_EXPRESSION_CHARS",
    "MAX_MAGNITUDE",
    "MAX_NODES",
    "PRECISION",
    "Calculation",
    "calculate",
    "format_decimal",
    "literals",
    "to_decimal",
]

PRECISION = 34
MAX_EXPRESSION_CHARS = 500
MAX_NODES = 200
MAX_DEPTH = 32
MAX_EXPONENT = 64
MAX_MAGNITUDE = 60  # |results| below 10**60: far beyond any balance sheet
MAX_ARGUMENTS = 100
_DISPLAY = decimal.Context(prec=PRECISION)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_DECIMAL_LITERAL = re.compile(r"^(?:\d[\d_]*)?(?:\.\d[\d_]*|\.)?(?:[eE][+-]?\d{1,3})?$")


@dataclass(frozen=True)
class Calculation:
    """A calculation's result: ``formula`` is the expression with its inputs substituted
    (what an auditor re-computes); ``exact`` is false when a step rounded."""

    expression: str
    value: Decimal
    formula: str
    inputs: Mapping[str, Decimal] = field(default_factory=dict)
    exact: bool = True

    @property
    def text(self) -> str:
        """``formula = value`` (``≈`` when a step rounded), e.g. ``share(12, 48) = 25``."""
        return f"{self.formula} {'=' if self.exact else '≈'} {format_decimal(self.value)}"


def format_decimal(value: Decimal) -> str:
    """``value`` in plain notation without trailing zeros: 1E+2 -> "100", 2.50 -> "2.5"."""
    if value.is_zero():
        return "0"
    return format(value.normalize(_DISPLAY), "f")


def to_decimal(value: object) -> Decimal:
    """An input as a Decimal: an int, a Decimal, a float (by its shortest repr) or a number
    written as text ("1,234.5", "(81.2)", "12%", "$81.8 billion")."""
    if isinstance(value, bool) or value is None:
        raise QueryError(f"calculate: {value!r} is not a number; bind each input to a number such as '1,234.5'")
    if isinstance(value, Decimal):
        out = value
    elif isinstance(value, int):
        out = Decimal(value)
    elif isinstance(value, float):
        out = Decimal(repr(value))
    elif isinstance(value, str):
        figure = parse_figure(value)
        if figure is None:
            raise QueryError(
                f"calculate: input {value[:40]!r} is not one number; write it as the evidence "
                "does, e.g. '1,234.5', '(81.2)', '12%' or '$81.8 billion'"
            )
        out = figure.amount
    else:
        raise QueryError(f"calculate: an input is a {type(value).__name__}, not a number")
    if not out.is_finite():
        raise QueryError("calculate: inputs must be finite numbers")
    return out


def _checked(value: Decimal) -> Decimal:
    if not value.is_zero() and value.adjusted() >= MAX_MAGNITUDE:
        raise QueryError(f"calculate: a result reached 10**{value.adjusted()}, past the limit of 10**{MAX_MAGNITUDE}")
    return value


def _one(args: Sequence[Decimal], name: str, count: int) -> None:
    if len(args) != count:
        raise QueryError(f"calculate: {name}() takes {count} argument{'s' if count > 1 else ''}, got {len(args)}")


def _some(args: Sequence[Decimal], name: str) -> None:
    if not args:
        raise QueryError(f"calculate: {name}() needs at least one number")


def _abs(args: Sequence[Decimal]) -> Decimal:
    _one(args, "abs", 1)
    return abs(args[0])


def _round(args: Sequence[Decimal]) -> Decimal:
    if len(args) not in (1, 2):
        raise QueryError("calculate: round() takes a number and optionally the decimals to keep, e.g. round(x, 2)")
    places = args[1] if len(args) == 2 else Decimal(0)
    if places != places.to_integral_value() or not -12 <= places <= 12:
        raise QueryError("calculate: round()'s decimals must be a whole number from -12 to 12")
    ctx = decimal.getcontext()
    inexact = ctx.flags[decimal.Inexact]
    out = args[0].quantize(Decimal(1).scaleb(-int(places)), rounding=ROUND_HALF_UP)
    ctx.flags[decimal.Inexact] = inexact  # rounding asked for is not a loss of exactness
    return out


def _min(args: Sequence[Decimal]) -> Decimal:
    _some(args, "min")
    return min(args)


def _max(args: Sequence[Decimal]) -> Decimal:
    _some(args, "max")
    return max(args)


def _sum(args: Sequence[Decimal]) -> Decimal:
    _some(args, "sum")
    total = Decimal(0)
    for a in args:
        total = _checked(total + a)
    return total


def _avg(args: Sequence[Decimal]) -> Decimal:
    return _sum(args) / len(args)


def _pct_change(args: Sequence[Decimal]) -> Decimal:
    _one(args, "pct_change", 2)
    old, new = args
    if old.is_zero():
        raise QueryError("calculate: pct_change() from 0 is undefined (division by zero); report the change in units")
    return (new - old) / abs(old) * 100


def _share(args: Sequence[Decimal]) -> Decimal:
    _one(args, "share", 2)
    part, whole = args
    if whole.is_zero():
        raise QueryError("calculate: share() of a whole of 0 is undefined (division by zero)")
    return part / whole * 100


#: the functions an expression may call
FUNCTIONS: dict[str, Callable[[Sequence[Decimal]], Decimal]] = {
    "abs": _abs,
    "round": _round,
    "min": _min,
    "max": _max,
    "sum": _sum,
    "avg": _avg,
    "pct_change": _pct_change,
    "share": _share,
}


class _Evaluator:
    def __init__(self, source: str, inputs: Mapping[str, Decimal]) -> None:
        self.source = source
        self.inputs = inputs

    def eval(self, node: ast.AST, depth: int = 0) -> Decimal:
        if depth > MAX_DEPTH:
            raise QueryError(f"calculate: the expression nests deeper than {MAX_DEPTH}; split it into steps")
        if isinstance(node, ast.Expression):
            return self.eval(node.body, depth + 1)
        if isinstance(node, ast.Constant):
            return self.literal(node)
        if isinstance(node, ast.Name):
            if node.id not in self.inputs:
                raise QueryError(
                    f"calculate: unknown name {node.id!r}; bind it in inputs (e.g. "
                    f'{{"{node.id}": {{"value": "1,234", "evidence": 1}}}}) or write the number'
                )
            return self.inputs[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = self.eval(node.operand, depth + 1)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            return _checked(self.binary(node, depth))
        if isinstance(node, ast.Call):
            return _checked(self.call(node, depth))
        raise QueryError(
            f"calculate: {type(node).__name__} is not allowed; use numbers, names bound in inputs, "
            f"+ - * / ** ( ) and {', '.join(FUNCTIONS)}"
        )

    def literal(self, node: ast.Constant) -> Decimal:
        text = ast.get_source_segment(self.source, node) or ""
        if isinstance(node.value, bool) or not isinstance(node.value, int | float) or not _DECIMAL_LITERAL.match(text):
            raise QueryError(f"calculate: {text[:40]!r} is not a decimal number; write numbers such as 1234.5")
        return _checked(Decimal(text.replace("_", "")))

    def binary(self, node: ast.BinOp, depth: int) -> Decimal:
        if not isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.Pow):
            raise QueryError(
                f"calculate: the operator {type(node.op).__name__} is not allowed; use + - * / ** "
                "(a percent sign only in inputs: '12%')"
            )
        left = self.eval(node.left, depth + 1)
        right = self.eval(node.right, depth + 1)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            if right.is_zero():
                raise QueryError("calculate: division by zero; check the inputs")
            return left / right
        if right != right.to_integral_value() or abs(right) > MAX_EXPONENT:
            raise QueryError(f"calculate: ** takes a whole exponent from -{MAX_EXPONENT} to {MAX_EXPONENT}")
        if right.is_zero():
            return Decimal(1)
        if left.is_zero() and right < 0:
            raise QueryError("calculate: 0 to a negative power is a division by zero")
        return left ** int(right)

    def call(self, node: ast.Call, depth: int) -> Decimal:
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        if name not in FUNCTIONS or node.keywords:
            raise QueryError(f"calculate: only these functions may be called, by position: {', '.join(FUNCTIONS)}")
        nodes: list[ast.expr] = list(node.args)
        if len(nodes) == 1 and isinstance(nodes[0], ast.List | ast.Tuple):
            nodes = list(nodes[0].elts)  # sum([a, b, c])
        if len(nodes) > MAX_ARGUMENTS or any(isinstance(n, ast.Starred) for n in nodes):
            raise QueryError(f"calculate: {name}() takes at most {MAX_ARGUMENTS} numbers, written out")
        return FUNCTIONS[name]([self.eval(n, depth + 1) for n in nodes])


class _Substitute(ast.NodeTransformer):
    """Names become their values and literals their source text, for the formula."""

    def __init__(self, source: str, inputs: Mapping[str, Decimal]) -> None:
        self.source = source
        self.inputs = inputs

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.inputs:
            text = format_decimal(self.inputs[node.id])
            return ast.Name(id=f"({text})" if text.startswith("-") else text)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        return ast.Name(id=ast.get_source_segment(self.source, node) or repr(node.value))


def _parse(expression: str) -> ast.Expression:
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise QueryError(f"calculate: the expression has {len(expression)} characters, over {MAX_EXPRESSION_CHARS}")
    if not expression.strip():
        raise QueryError("calculate: the expression is empty; write one such as (a - b) / b * 100")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise QueryError(f"calculate: the expression is not valid arithmetic ({type(exc).__name__}); check it") from exc
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise QueryError(f"calculate: the expression has more than {MAX_NODES} parts; split it into steps")
    return tree


def literals(expression: str) -> list[str]:
    """The numbers written in ``expression`` itself, as written (not its inputs)."""
    tree = _parse(expression)
    source = expression.strip()
    return [ast.get_source_segment(source, n) or "" for n in ast.walk(tree) if isinstance(n, ast.Constant)]


def calculate(expression: str, inputs: Mapping[str, object] | None = None) -> Calculation:
    """Evaluate ``expression`` with ``inputs`` bound to names (see the module's docstring).

    >>> calculate("share(a, b)", {"a": "12", "b": "48"}).text
    'share(12, 48) = 25'
    """
    bound: dict[str, Decimal] = {}
    for name, raw in (inputs or {}).items():
        if not _NAME.match(name) or name in FUNCTIONS:
            raise QueryError(
                f"calculate: {name[:40]!r} cannot name an input; use letters, digits and _ (not a function name)"
            )
        bound[name] = to_decimal(raw)
    tree = _parse(expression)
    source = expression.strip()
    context = decimal.Context(
        prec=PRECISION,
        rounding=decimal.ROUND_HALF_EVEN,
        traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
    )
    with decimal.localcontext(context) as ctx:
        try:
            value = _Evaluator(source, bound).eval(tree)
            value = +value  # to the context's precision
        except (decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow) as exc:
            raise QueryError(f"calculate: the arithmetic failed ({type(exc).__name__}); check the inputs") from exc
        exact = not ctx.flags[decimal.Inexact]
    formula = ast.unparse(_Substitute(source, bound).visit(tree))
    return Calculation(expression=source, value=value, formula=formula, inputs=bound, exact=exact)
