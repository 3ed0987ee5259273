"""Structured dataset routes under ``/v1``: list the datasets the caller may read, and query
them with read-only SQL at two clocks.

Each route hands the caller's principal to the application layer
(:mod:`strongroom.service.datasets`), which decides and audits: a dataset the caller may not
read is absent from the list and refused in SQL exactly as one that does not exist. A
refused or malformed query is a 422 with the reason, as on every ``/v1`` route (the
application's errors become HTTP statuses in one place, :mod:`strongroom.api.app`).
Datasets are loaded with ``strongroom data load`` (there is no upload route). Responses hold
rows the caller is entitled to, so no shared cache may keep them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from strongroom.api.deps import Who, service
from strongroom.service.datasets import MAX_SQL_CHARS, DatasetQuery, dataset_record, result_record

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["datasets"])
_PRIVATE = {"Cache-Control": "private, no-store"}
KnownAt = Annotated[
    str | None, Query(max_length=64, description="Only versions loaded by then (a date or ISO datetime; default: now).")
]
JsonValue = str | int | float | bool | None | list[object] | dict[str, object]


class ColumnOut(BaseModel):
    name: str
    type: str


class DatasetVersionOut(BaseModel):
    version: int
    loaded_at: datetime
    loaded_by: str
    sha256: str
    rows: int
    superseded: int = Field(description="Rows of earlier loads this load corrected.")
    mode: str
    source: str
    valid_time_column: str
    key_columns: list[str]
    columns: list[ColumnOut]


class DatasetOut(BaseModel):
    name: str
    acl: list[str] = Field(description="Who may read the dataset (its newest version's ACL, for all of its history).")
    valid_time_column: str
    key_columns: list[str]
    columns: list[ColumnOut]
    versions: list[DatasetVersionOut] = Field(description="Versions loaded by known_at, newest first.")


class DatasetList(BaseModel):
    datasets: list[DatasetOut]


class DatasetQueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=MAX_SQL_CHARS, description="One SELECT over datasets you may read.")
    as_of: str | None = Field(
        default=None, max_length=64, description="Only rows valid by then (a date: its end, UTC); default: now."
    )
    known_at: str | None = Field(
        default=None, max_length=64, description="Only what was loaded by then (corrections included); default: now."
    )
    max_rows: int | None = Field(default=None, description="At most this many rows (default: the server's limit).")


class UsedVersion(BaseModel):
    name: str
    version: int
    sha256: str
    loaded_at: datetime


class DatasetQueryOut(BaseModel):
    sql: str
    executed_sql: str = Field(description="The SQL the engine ran: each dataset read at both clocks.")
    datasets: list[UsedVersion] = Field(description="The dataset versions that answered (at known_at).")
    as_of: datetime
    known_at: datetime
    columns: list[str]
    rows: list[list[JsonValue]]
    row_count: int
    truncated: bool = Field(description="More rows matched than max_rows; the rest were cut.")
    elapsed_ms: float


@router.get("/datasets", response_model=DatasetList)
async def list_datasets(request: Request, response: Response, principal: Who, known_at: KnownAt = None) -> DatasetList:
    """The datasets the caller may read, with their versions loaded by ``known_at``."""
    views = await service(request).platform.datasets(principal, known_at)
    response.headers.update(_PRIVATE)
    return DatasetList.model_validate({"datasets": [dataset_record(v) for v in views]})


@router.post("/datasets/query", response_model=DatasetQueryOut, responses={422: {"description": "refused SQL"}})
async def query_datasets(body: DatasetQueryIn, request: Request, response: Response, principal: Who) -> DatasetQueryOut:
    """Read-only SQL over the datasets the caller may read: rows valid by ``as_of``, as known at
    ``known_at`` (both clamped to now), at most ``max_rows`` of them."""
    query = DatasetQuery(sql=body.sql, as_of=body.as_of, known_at=body.known_at, max_rows=body.max_rows)
    result = await service(request).platform.query_datasets(principal, query)  # QueryError: 422
    response.headers.update(_PRIVATE)
    return DatasetQueryOut.model_validate(result_record(result))
