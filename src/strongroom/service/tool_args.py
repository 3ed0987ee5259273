"""The agent's tools as a model sees them: names, descriptions and argument schemas, and the
checking of the arguments a model writes (a trust boundary: pydantic, no extra keys, sizes
capped), so that a malformed call is a :class:`~strongroom.errors.QueryError` whose message
says which argument is wrong and what it should be.

    args = parse_arguments("search_documents", {"query": "net sales", "k": 3})
    [spec.name for spec in TOOL_SPECS]   # search_documents, list_datasets, query_data, ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from strongroom.agent.calculator import MAX_EXPRESSION_CHARS
from strongroom.data.base import DATASET_NAME
from strongroom.errors import QueryError
from strongroom.llm.types import ToolSpec

__all__ = [
    "TOOL_ARGS",
    "TOOL_SPECS",
    "AsofJoinArgs",
    "CalculateArgs",
    "FilingTableArgs",
    "ListDatasetsArgs",
    "QueryDataArgs",
    "SearchArgs",
    "TermSheetArgs",
    "parse_arguments",
]

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
Column = Annotated[str, Field(pattern=_IDENTIFIER, description="a column name, as list_datasets gives it")]
OptionalColumn = Annotated[str, Field(pattern=r"^(?:[A-Za-z_][A-Za-z0-9_]{0,62})?$")]
Dataset = Annotated[str, Field(pattern=DATASET_NAME, description="a dataset name, as list_datasets gives it")]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: object) -> object:
        # models often write null for an argument they mean to leave out
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if v is not None}
        return data


class SearchArgs(_Args):
    """Search the documents you may read (filings, research notes, term sheets) for passages
    about ``query``, at the run's as-of time. Each passage cites its document, version, page
    and characters."""

    query: str = Field(min_length=1, max_length=1000, description="what to look for, in words")
    k: int = Field(5, ge=1, le=20, description="how many passages, 1 to 20")
    doc_types: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=8, description="only these document types (e.g. filing, term_sheet)"
    )


class ListDatasetsArgs(_Args):
    """The structured datasets you may query: names, columns and types, the valid-time column,
    the key columns and the newest version known at the run's known-at time."""


class QueryDataArgs(_Args):
    """Run one read-only SQL SELECT (DuckDB dialect) over the datasets you may read; each
    dataset shows only rows valid at the run's as-of time, as known at its known-at time."""

    sql: str = Field(min_length=1, max_length=20_000, description="one SELECT statement over dataset names")
    max_rows: int = Field(200, ge=1, le=1000, description="at most this many rows back, 1 to 1000")


class AsofJoinArgs(_Args):
    """Each row of ``left`` with the latest row of ``right`` at or before its time (an ASOF
    JOIN on the ``by`` columns), e.g. trades with the price in force when each was done."""

    left: Dataset
    right: Dataset
    by: list[Column] = Field(default_factory=list, max_length=8, description="columns both datasets share")
    left_time: OptionalColumn = Field("", description="left's time column (default: its valid-time column)")
    right_time: OptionalColumn = Field("", description="right's time column (default: its valid-time column)")
    columns: list[Column] = Field(
        default_factory=list, max_length=32, description="right's columns to bring (default: all but by and time)"
    )
    where: str = Field("", max_length=2000, description="a SQL boolean over left's columns, e.g. qty > 100")
    max_rows: int = Field(200, ge=1, le=1000, description="at most this many rows back, 1 to 1000")


class CalculateArgs(_Args):
    """Evaluate an arithmetic expression exactly, in decimals: + - * / ** ( ), abs, round(x, n),
    min, max, sum, avg, pct_change(old, new) and share(part, whole) (both in percent). Give
    each number taken from a cited result as a variable, written as the result writes it."""

    expression: str = Field(
        min_length=1, max_length=MAX_EXPRESSION_CHARS, description="e.g. pct_change(prior, latest), (a - b) / b * 100"
    )
    variables: dict[str, str] = Field(
        default_factory=dict, max_length=50, description="name -> a number written as a string, e.g. '81797'"
    )

    @field_validator("variables", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: object) -> object:
        # a model often writes a number where text was asked: keep it, exactly as JSON gave it
        if isinstance(value, Mapping):
            return {k: v if isinstance(v, str) or isinstance(v, bool) else str(v) for k, v in value.items()}
        return value

    @field_validator("variables")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, number in value.items():
            if not _VARIABLE.match(name):
                raise ValueError(f"{name!r} is not a variable name (letters, digits and _, not starting with a digit)")
            if len(number) > 100:
                raise ValueError(f"{name}: a number of at most 100 characters")
        return value


class TermSheetArgs(_Args):
    """The stored term sheets you may read, with the fields extracted from them (issuer,
    coupon, issue price, underlying, initial level, barriers, maturity ...); filter by name,
    underlying, or maturity."""

    name: str = Field("", max_length=300, description="a file name, part of it, or a document or version id prefix")
    underlying: str = Field("", max_length=200, description="only term sheets on this underlying")
    maturing_before: str = Field("", max_length=10, description="only those maturing before this date, YYYY-MM-DD")

    @field_validator("maturing_before")
    @classmethod
    def _date(cls, value: str) -> str:
        if value:
            try:
                date.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"{value!r} is not a date: write YYYY-MM-DD") from exc
        return value


class FilingTableArgs(_Args):
    """Table rows from a stored filing: the rows naming ``line_item`` (synonyms count: capex is
    purchases of property, plant and equipment), each labelled with its statement, periods and
    scale; or every table on ``page``."""

    document: str = Field(min_length=1, max_length=300, description="document id, version id prefix, source or file")
    line_item: str = Field("", max_length=200, description="e.g. total net sales, research and development")
    page: int = Field(0, ge=0, le=100_000, description="a page number (1 is the first); 0: search every page")

    @model_validator(mode="after")
    def _something(self) -> FilingTableArgs:
        if not self.line_item and not self.page:
            raise ValueError("give line_item, or page, or both")
        return self


#: each tool's argument model, by name (the contract: tools_spec of issue 19)
TOOL_ARGS: dict[str, type[_Args]] = {
    "search_documents": SearchArgs,
    "list_datasets": ListDatasetsArgs,
    "query_data": QueryDataArgs,
    "asof_join": AsofJoinArgs,
    "calculate": CalculateArgs,
    "term_sheet": TermSheetArgs,
    "filing_table": FilingTableArgs,
}


def _without_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_titles(v) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_without_titles(v) for v in node]
    return node


def _spec(name: str, model: type[_Args]) -> ToolSpec:
    description = " ".join((model.__doc__ or name).split()).replace("``", "")
    schema = _without_titles(model.model_json_schema())
    schema.pop("description", None)  # the spec's own description says it once
    return ToolSpec(name, description, schema)


#: what the model is told about each tool (OpenAI function specs)
TOOL_SPECS: tuple[ToolSpec, ...] = tuple(_spec(name, model) for name, model in TOOL_ARGS.items())


def _problem(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ())) or "arguments"
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    if error.get("type") == "extra_forbidden":
        message = "is not an argument of this tool"
    elif error.get("type") == "missing":
        message = "is required"
    return f"{where}: {message}"


def parse_arguments(name: str, arguments: Mapping[str, object]) -> _Args:
    """The arguments of a call of tool ``name``, checked; a :class:`QueryError` naming each
    wrong argument (and the tools, for a name that is none of them)."""
    model = TOOL_ARGS.get(name)
    if model is None:
        raise QueryError(f"no tool named {name[:64]!r}; the tools are {', '.join(TOOL_ARGS)}")
    if not isinstance(arguments, Mapping):
        raise QueryError(f"{name}: the arguments must be a JSON object")
    try:
        return model.model_validate(dict(arguments))
    except ValidationError as exc:
        problems = "; ".join(_problem(e) for e in exc.errors()[:8])
        allowed = ", ".join(model.model_fields)
        raise QueryError(f"{name}: {problems} (its arguments: {allowed or 'none'})") from exc
