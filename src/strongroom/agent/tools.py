"""A tool call's arguments, checked before any tool runs; and the agent's own tool, ``calculate``.

A model writes a call's arguments as JSON text, and it may get them wrong: not JSON, not an
object, a missing or extra field, the wrong type. :func:`parse_arguments` checks them against
the tool's JSON Schema (the subset tools use: ``type``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``enum``, ``minimum``/``maximum``,
``minLength``/``maxLength``, ``minItems``/``maxItems``) and raises
:class:`~strongroom.errors.QueryError` with a message the model can act on.

``calculate`` is built into every run: it reads nothing a principal could be refused, and it
needs the run's evidence, because each input must be bound to the evidence item that states
it (a number the model made up cannot enter a calculation without being flagged).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation

from strongroom.agent.base import Evidence, ToolOutput
from strongroom.agent.calculator import MAX_EXPRESSION_CHARS, calculate, format_decimal, literals
from strongroom.agent.citations import states
from strongroom.agent.numbers import parse_figure
from strongroom.errors import QueryError
from strongroom.llm.types import ToolSpec

__all__ = ["CALCULATE", "check_schema", "parse_arguments", "run_calculate"]

#: the agent's built-in calculator tool
CALCULATE = ToolSpec(
    name="calculate",
    description=(
        "Exact decimal arithmetic over numbers from the evidence: + - * / ** ( ), abs, round(x, n), "
        "min, max, sum, avg, pct_change(old, new) (percent), share(part, whole) (percent). Bind each "
        "number taken from the evidence as an input, with the evidence number that states it, and use "
        'its name in the expression, e.g. {"expression": "pct_change(q2, q3)", "inputs": {"q2": '
        '{"value": "81,797", "evidence": 1}, "q3": {"value": "89,498", "evidence": 2}}}. Only whole '
        "numbers up to 1000 and powers of ten may be written in the expression itself. The result is "
        "a new evidence item to cite."
    ),
    parameters={
        "type": "object",
        "properties": {
            "expression": {"type": "string", "maxLength": MAX_EXPRESSION_CHARS},
            "inputs": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "value": {"type": ["string", "number"]},
                        "evidence": {"type": "integer", "minimum": 1},
                    },
                    "required": ["value", "evidence"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["expression"],
        "additionalProperties": False,
    },
)

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _type_ok(value: object, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False  # JSON's true is not 1
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(name, (object,)))


def check_schema(value: object, schema: Mapping[str, object], path: str = "arguments") -> None:
    """Raise :class:`QueryError` naming the first place ``value`` breaks ``schema``."""
    wanted = schema.get("type")
    names = [wanted] if isinstance(wanted, str) else list(wanted) if isinstance(wanted, list) else []
    if names and not any(_type_ok(value, str(n)) for n in names):
        raise QueryError(f"{path} must be {' or '.join(map(str, names))}, not {type(value).__name__}")
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        raise QueryError(f"{path} must be one of {', '.join(map(json.dumps, enum))}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, int | float) and value < low:
            raise QueryError(f"{path} must be at least {low}")
        if isinstance(high, int | float) and value > high:
            raise QueryError(f"{path} must be at most {high}")
    if isinstance(value, str):
        short, long = schema.get("minLength"), schema.get("maxLength")
        if isinstance(short, int) and len(value) < short:
            raise QueryError(f"{path} must have at least {short} characters")
        if isinstance(long, int) and len(value) > long:
            raise QueryError(f"{path} must have at most {long} characters")
    if isinstance(value, list):
        few, many = schema.get("minItems"), schema.get("maxItems")
        if isinstance(few, int) and len(value) < few:
            raise QueryError(f"{path} must have at least {few} items")
        if isinstance(many, int) and len(value) > many:
            raise QueryError(f"{path} must have at most {many} items")
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                check_schema(item, items, f"{path}[{i}]")
    if isinstance(value, dict):
        properties = schema.get("properties")
        props = properties if isinstance(properties, Mapping) else {}
        required = schema.get("required")
        for key in required if isinstance(required, list) else []:
            if key not in value:
                raise QueryError(f"{path} lacks the required field {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props and isinstance(props[key], Mapping):
                check_schema(item, props[key], f"{path}.{key}")
            elif extra is False:
                allowed = ", ".join(map(str, props)) or "none"
                raise QueryError(f"{path} has an unknown field {key!r} (fields: {allowed})")
            elif isinstance(extra, Mapping):
                check_schema(item, extra, f"{path}.{key}")


def parse_arguments(spec: ToolSpec, arguments: str) -> dict[str, object]:
    """A call's JSON ``arguments`` as a dict, checked against ``spec.parameters``."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except (json.JSONDecodeError, RecursionError) as exc:
        raise QueryError(f"the arguments of {spec.name} are not valid JSON ({exc}); send one JSON object") from exc
    if not isinstance(value, dict):
        raise QueryError(f"the arguments of {spec.name} must be a JSON object, not {type(value).__name__}")
    check_schema(value, spec.parameters)
    return value


def _constant(written: str) -> bool:
    """A number an expression may write itself: a whole number up to 1000 (100 for percent,
    4 quarters, 12 months, 365 days) or a power of ten (a change of unit)."""
    try:
        value = Decimal(written.replace("_", ""))
    except InvalidOperation:
        return False
    if value != value.to_integral_value() or value < 0:
        return False
    return value <= 1000 or (value <= 10**12 and value.normalize().as_tuple().digits == (1,))


def run_calculate(arguments: Mapping[str, object], evidence: Sequence[Evidence]) -> ToolOutput:
    """Run ``calculate``: each input must be stated by the evidence item it names (1-based),
    and the expression may write only small whole numbers and powers of ten itself (any other
    number must enter as an input, so a number the model made up cannot become evidence)."""
    expression = str(arguments.get("expression", ""))
    for written in literals(expression):
        if not _constant(written):
            raise QueryError(
                f"the number {written} in the expression must come from the evidence: bind it as an input "
                "with the evidence item that states it (only whole numbers up to 1000 and powers of ten "
                "may be written in the expression)"
            )
    bound: dict[str, object] = {}
    cited: dict[str, dict[str, object]] = {}
    raw_inputs = arguments.get("inputs") or {}
    inputs = raw_inputs if isinstance(raw_inputs, Mapping) else {}
    for name, spec in inputs.items():
        if not isinstance(spec, Mapping):  # pragma: no cover - the schema admits only objects
            raise QueryError(f"input {name!r} must be an object with value and evidence")
        value, n = spec.get("value"), spec.get("evidence")
        if not isinstance(n, int) or not 1 <= n <= len(evidence):
            raise QueryError(
                f"input {name!r} cites evidence {n}, but the run has {len(evidence)} evidence items; "
                "cite the number of the item that states it"
            )
        figure = parse_figure(str(value))
        if figure is None:
            raise QueryError(
                f"input {name!r} = {str(value)[:40]!r} is not one number; copy it as the evidence writes it"
            )
        if not states(evidence[n - 1], figure):
            raise QueryError(
                f"input {name!r} = {value} is not stated by evidence [{n}]; bind it to the evidence item "
                "that states that number, or read it first"
            )
        bound[name] = str(value)
        cited[str(name)] = {"value": str(value), "evidence": n}
    result = calculate(expression, bound)
    value_text = format_decimal(result.value)
    return ToolOutput(
        content={"value": value_text, "exact": result.exact},
        evidence=(
            Evidence(
                kind="calculation",
                ref={
                    "expression": result.expression,
                    "inputs": cited,
                    "formula": result.formula,
                    "exact": result.exact,
                },
                text=result.text,
                numbers=(value_text,),
            ),
        ),
    )
