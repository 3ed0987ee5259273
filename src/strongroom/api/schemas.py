"""Wire schemas: pydantic at the HTTP boundary only, converted to and from the vocabulary."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from strongroom.types import Answer, Citation, DocumentVersion, Hit

__all__ = [
    "AclRequest",
    "AnswerOut",
    "AskRequest",
    "ChatMessage",
    "ChatRequest",
    "CitationOut",
    "ClaimOut",
    "DocumentOut",
    "ErrorOut",
    "FunctionCallIn",
    "FunctionIn",
    "HitOut",
    "JobList",
    "JobOut",
    "SearchOut",
    "SearchRequest",
    "ToolCallIn",
    "ToolChoiceIn",
    "ToolIn",
    "VersionOut",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


_AS_OF = (
    "Only what was published (knowable) by then: a date (YYYY-MM-DD: the end of that day, UTC) or an ISO "
    "datetime (no zone: UTC). Default and upper bound: now."
)
_KNOWN_AT = (
    "Only what the platform held (ingested) by then, same forms; with as_of, replays what a query saw at "
    "that time. Default and upper bound: now."
)

_PUBLISHED_FROM = (
    "Only versions published (knowable) then or later: a date (YYYY-MM-DD: the start of that day, UTC) or an "
    "ISO datetime (no zone: UTC). It filters the version current at the clocks (it never brings back an older "
    "one) and may not be after as_of (422). Default: no lower bound."
)


class _Clocks(_In):
    as_of: str | None = Field(default=None, max_length=64, description=_AS_OF)
    known_at: str | None = Field(default=None, max_length=64, description=_KNOWN_AT)


class _Query(_Clocks):
    published_from: str | None = Field(default=None, max_length=64, description=_PUBLISHED_FROM)
    doc_types: list[str] = Field(default_factory=list, max_length=32)
    filters: dict[str, str] = Field(default_factory=dict, description="Metadata equality filters.")

    @field_validator("filters")
    @classmethod
    def _few(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 32:
            raise ValueError("at most 32 filters")
        return value


class SearchRequest(_Query):
    query: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=10, ge=1, le=1000)


class AskRequest(_Query):
    question: str = Field(min_length=1, max_length=4000)
    k: int = Field(default=5, ge=1, le=1000)
    model: str | None = Field(
        default=None,
        max_length=200,
        description="A model route that writes the answer (GET /v1/models lists those you may use); "
        "default: strongroom-rag, the extractive generator.",
    )


class AclRequest(_In):
    acl: list[str] = Field(min_length=1, max_length=100, description="The groups who may read the document.")


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


class CitationOut(BaseModel):
    document_id: str
    version_id: str
    source: str
    title: str
    page: int
    char_start: int
    char_end: int
    quote: str
    label: str

    @classmethod
    def of(cls, c: Citation) -> CitationOut:
        return cls(**dataclasses.asdict(c), label=c.label)


class HitOut(BaseModel):
    chunk_id: str
    score: float
    text: str
    document_id: str
    version_id: str
    source: str
    title: str
    page: int
    char_start: int
    char_end: int
    published_at: datetime

    @classmethod
    def of(cls, h: Hit) -> HitOut:
        return cls(
            chunk_id=h.chunk.id,
            score=h.score,
            text=h.chunk.text,
            document_id=h.version.document_id,
            version_id=h.version.id,
            source=h.version.source,
            title=h.version.title,
            page=h.chunk.page,
            char_start=h.chunk.char_start,
            char_end=h.chunk.char_end,
            published_at=h.version.published_at,
        )


class SearchOut(BaseModel):
    hits: list[HitOut]


class ClaimOut(BaseModel):
    text: str
    citations: list[CitationOut]


class AnswerOut(BaseModel):
    question: str
    found: bool
    answer: str
    claims: list[ClaimOut]
    citations: list[CitationOut]
    generator: str
    metadata: dict[str, str]
    audit_seq: int | None = Field(
        default=None, description="The seq of the answer's audit record (GET /v1/audit): what feedback refers to."
    )

    @classmethod
    def of(cls, a: Answer, audit_seq: int | None = None) -> AnswerOut:
        return cls(
            question=a.question,
            found=a.found,
            answer=a.text,
            claims=[ClaimOut(text=c.text, citations=[CitationOut.of(x) for x in c.citations]) for c in a.claims],
            citations=[CitationOut.of(x) for x in a.citations],
            generator=a.generator,
            metadata=dict(a.metadata),
            audit_seq=audit_seq,
        )


class VersionOut(BaseModel):
    version_id: str
    title: str
    media_type: str
    doc_type: str
    acl: list[str]
    published_at: datetime
    ingested_at: datetime
    size: int
    pages: int
    metadata: dict[str, str]

    @classmethod
    def of(cls, v: DocumentVersion) -> VersionOut:
        return cls(
            version_id=v.id,
            title=v.title,
            media_type=v.media_type,
            doc_type=v.doc_type,
            acl=sorted(v.acl),
            published_at=v.published_at,
            ingested_at=v.ingested_at,
            size=v.size,
            pages=v.pages,
            metadata=dict(v.metadata),
        )


class DocumentOut(BaseModel):
    document_id: str
    source: str
    title: str
    current: VersionOut
    versions: list[VersionOut] = Field(default_factory=list)


class DocumentList(BaseModel):
    documents: list[DocumentOut]


class PageOut(BaseModel):
    document_id: str
    version_id: str
    page: int
    text: str
    has_image: bool = Field(
        default=False, description="Whether .../image draws this page (a PDF whose original was kept)."
    )


class HighlightOut(BaseModel):
    """Where a span of a page's text lies on the page image: one box per line, each
    ``[x0, y0, x1, y1]`` as fractions of the page's width and height, origin top-left."""

    boxes: list[tuple[float, float, float, float]]


class TableSummaryOut(BaseModel):
    """Where a table is, its kind and size, and its first row."""

    index: int = Field(description="Its number in the version (from 0): .../tables/{index} reads it.")
    page: int
    kind: str = Field(
        description='"pipe": rows with header cells (DOCX, HTML, XLSX, CSV, Markdown); "figures": a statement\'s '
        "lines of a label then figures (PDF), with no header cells."
    )
    rows: int
    columns: int
    first: list[str] = Field(description="The texts of its first body row.")


class TableList(BaseModel):
    document_id: str
    version_id: str
    tables: list[TableSummaryOut]


class CellOut(BaseModel):
    """One cell: its text, its figure when it is one, and its span in the page's text (as a citation's)."""

    text: str
    number: float | None = Field(description="The figure it prints: (265) is -265, $ 1.27 is 1.27; else null.")
    page: int
    start: int
    end: int


class TableOut(BaseModel):
    """One table: its header texts (empty for a figure table) and its body rows of cells."""

    document_id: str
    version_id: str
    index: int
    page: int
    kind: str
    start: int = Field(description="Where the table starts in the page's text.")
    end: int
    header: list[str]
    rows: list[list[CellOut]]


class JobFile(BaseModel):
    name: str
    status: Literal["ingested", "duplicate", "failed"]
    version_id: str = ""
    document_id: str = ""
    pages: int = 0
    chunks: int = 0
    error: str = ""


class JobOut(BaseModel):
    job_id: str
    status: Literal["queued", "running", "retrying", "done", "failed", "interrupted"]
    started_at: datetime
    finished_at: datetime | None = None
    files: list[JobFile] = Field(default_factory=list)
    submitted_by: str = Field(default="", description="Who uploaded it.")


class JobList(BaseModel):
    """Upload jobs, newest first: the caller's own (an admin's: everyone's)."""

    jobs: list[JobOut]


_TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}$"


class FunctionCallIn(BaseModel):
    """The function of a tool call an assistant message carries: its name and the JSON
    text of its arguments, as the model wrote them."""

    name: str = Field(pattern=_TOOL_NAME)
    arguments: str = Field(max_length=1_000_000)


class ToolCallIn(BaseModel):
    """A tool call in an assistant message (OpenAI's shape)."""

    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCallIn


def _empty_schema() -> dict[str, object]:
    return {"type": "object", "properties": {}}


class FunctionIn(BaseModel):
    """A function a model may call: its name, what it does, its arguments' JSON Schema."""

    name: str = Field(pattern=_TOOL_NAME)
    description: str = Field(default="", max_length=8192)
    parameters: dict[str, object] = Field(default_factory=_empty_schema)


class ToolIn(BaseModel):
    """A tool offered to the model (OpenAI's ``{"type": "function", "function": ...}``)."""

    type: Literal["function"]
    function: FunctionIn


class _Named(BaseModel):
    name: str = Field(pattern=_TOOL_NAME)


class ToolChoiceIn(BaseModel):
    """``tool_choice`` naming the one function the model must call."""

    type: Literal["function"]
    function: _Named


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, object]] | None = None
    tool_calls: list[ToolCallIn] | None = Field(default=None, max_length=128)
    tool_call_id: str | None = Field(default=None, min_length=1, max_length=256)

    def text(self) -> str:
        """The message's text: its content, or the text parts of a list of parts."""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content or [] if p.get("type") == "text")


class ChatRequest(BaseModel):
    """The OpenAI chat request; unknown OpenAI options are accepted and ignored.

    With ``tools`` (or tool calls and tool results among the messages) the conversation is
    sent as it is to the model route ``model`` names, and the answer may be tool calls;
    without, the last user message is a question answered from the store with citations.
    """

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=256)
    stream: bool = False
    tools: list[ToolIn] | None = Field(default=None, max_length=128)
    tool_choice: Literal["auto", "none", "required"] | ToolChoiceIn | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream_options: dict[str, object] | None = None
    k: int = Field(default=5, ge=1, le=1000)
    as_of: str | None = Field(default=None, max_length=64, description=_AS_OF)
    known_at: str | None = Field(default=None, max_length=64, description=_KNOWN_AT)
    published_from: str | None = Field(default=None, max_length=64, description=_PUBLISHED_FROM)
    filters: dict[str, str] = Field(default_factory=dict)
