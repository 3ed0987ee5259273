"""Conversation routes under ``/v1``: history, follow-ups, feedback, its export and share links.

Each route hands the caller's principal to the application layer
(:mod:`strongroom.service.conversations`), which decides and audits: a conversation, turn or
link the caller may not see is a 404 exactly as one that does not exist, and a shared
conversation opens only for a caller who may read every document version it cites at the
link's ``as_of``. Responses hold document text the caller is entitled to, so no shared
cache may keep them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from strongroom.api.deps import Who, service
from strongroom.api.routes import ask_of
from strongroom.api.schemas import AnswerOut, AskRequest
from strongroom.service.conversation_store import Conversation, Feedback, Thread, Turn

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["conversations"])
_PRIVATE = {"Cache-Control": "private, no-store"}
Id = Annotated[str, Path(min_length=1, max_length=100)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConversationIn(_In):
    title: str = Field(default="", max_length=200, description="Default: its first question.")


class FeedbackIn(_In):
    rating: Literal["up", "down"]
    comment: str = Field(default="", max_length=2000)


class ShareIn(_In):
    as_of: str | None = Field(
        default=None,
        max_length=64,
        description="The instant the link's citations are checked at (a date or an ISO datetime); default: now.",
    )


class ConversationOut(BaseModel):
    conversation_id: str
    title: str
    created_at: datetime

    @classmethod
    def of(cls, c: Conversation) -> ConversationOut:
        return cls(conversation_id=c.id, title=c.title, created_at=c.created_at)


class ConversationList(BaseModel):
    conversations: list[ConversationOut]


class FeedbackOut(BaseModel):
    turn_id: str
    rating: Literal["up", "down"]
    comment: str
    created_at: datetime
    audit_seq: int | None = Field(description="The seq of the rated answer's audit record.")

    @classmethod
    def of(cls, f: Feedback) -> FeedbackOut:
        return cls(
            turn_id=f.turn_id, rating=f.rating, comment=f.comment, created_at=f.created_at, audit_seq=f.audit_seq
        )


class TurnOut(BaseModel):
    """One question and its answer; ``query`` is what was retrieved (a follow-up with its context)."""

    conversation_id: str
    turn_id: str
    question: str
    query: str
    as_of: str | None
    known_at: str | None
    audit_seq: int | None = Field(description="The seq of the answer's audit record (GET /v1/audit).")
    created_at: datetime
    answer: AnswerOut
    feedback: FeedbackOut | None = None

    @classmethod
    def of(cls, t: Turn, feedback: Feedback | None = None) -> TurnOut:
        return cls(
            conversation_id=t.conversation_id,
            turn_id=t.id,
            question=t.question,
            query=t.query,
            as_of=t.as_of,
            known_at=t.known_at,
            audit_seq=t.audit_seq,
            created_at=t.created_at,
            answer=AnswerOut.model_validate({**t.answer, "audit_seq": t.audit_seq}),
            feedback=FeedbackOut.of(feedback) if feedback else None,
        )


class ConversationDetail(ConversationOut):
    turns: list[TurnOut]

    @classmethod
    def of_thread(cls, thread: Thread) -> ConversationDetail:
        c = thread.conversation
        turns = [TurnOut.of(t, thread.feedback.get(t.id)) for t in thread.turns]
        return cls(conversation_id=c.id, title=c.title, created_at=c.created_at, turns=turns)


class ShareOut(BaseModel):
    token: str
    url: str = Field(description="The path that opens the link: GET it with your credentials.")
    as_of: str


class SharedTurnOut(BaseModel):
    question: str
    as_of: str | None
    known_at: str | None
    created_at: datetime
    answer: AnswerOut


class SharedOut(BaseModel):
    title: str
    as_of: str = Field(description="The instant every cited version was checked at.")
    turns: list[SharedTurnOut]


@router.post("/conversations", response_model=ConversationOut, status_code=201)
async def create_conversation(
    request: Request, response: Response, principal: Who, body: ConversationIn | None = None
) -> ConversationOut:
    """Start an empty conversation (``POST .../{id}/ask`` asks in it)."""
    created = await service(request).platform.create_conversation(principal, body.title if body else "")
    response.headers.update(_PRIVATE)
    return ConversationOut.of(created)


@router.get("/conversations", response_model=ConversationList)
async def list_conversations(request: Request, response: Response, principal: Who) -> ConversationList:
    """The caller's conversations, newest first."""
    found = await service(request).platform.conversations(principal)
    response.headers.update(_PRIVATE)
    return ConversationList(conversations=[ConversationOut.of(c) for c in found])


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail)
async def get_conversation(
    conversation_id: Id, request: Request, response: Response, principal: Who
) -> ConversationDetail:
    """One of the caller's conversations with its turns and feedback (404 for anyone else's).
    An answer citing a document the caller may no longer read is withheld."""
    thread = await service(request).platform.conversation(principal, conversation_id)
    response.headers.update(_PRIVATE)
    return ConversationDetail.of_thread(thread)


@router.delete("/conversations/{conversation_id}")
async def delete_conversation(conversation_id: Id, request: Request, principal: Who) -> dict[str, object]:
    """Delete one of the caller's conversations with its turns, feedback and share links."""
    await service(request).platform.delete_conversation(principal, conversation_id)
    return {"conversation_id": conversation_id, "deleted": True}


@router.post("/conversations/{conversation_id}/ask", response_model=TurnOut)
async def ask_in_conversation(
    conversation_id: Id, body: AskRequest, request: Request, response: Response, principal: Who
) -> TurnOut:
    """Ask in a conversation (the body of ``/v1/ask``). A short follow-up, or one that leans on
    the previous question ("and in 2022?"), is retrieved with the previous question's words
    (``query`` in the reply); without clocks it keeps the previous turn's ``as_of``/``known_at``
    (``published_from``, ``doc_types`` and ``filters`` apply to this question only)."""
    svc = service(request)
    turn = await svc.platform.converse(principal, conversation_id, ask_of(svc, body))
    response.headers.update(_PRIVATE)
    return TurnOut.of(turn)


@router.post("/conversations/{conversation_id}/turns/{turn_id}/feedback", response_model=FeedbackOut)
async def give_feedback(
    conversation_id: Id, turn_id: Id, body: FeedbackIn, request: Request, principal: Who
) -> FeedbackOut:
    """Rate an answer of the caller's own (``up``/``down``, a comment); a new rating replaces the last."""
    given = await service(request).platform.feedback(principal, conversation_id, turn_id, body.rating, body.comment)
    return FeedbackOut.of(given)


@router.get("/feedback/export", response_class=Response)
async def export_feedback(request: Request, principal: Who) -> Response:
    """The caller's own rated answers for evaluation, as JSON lines: question, query retrieved,
    answer, claims, citations, rating, comment, clocks and the answer's ``audit_seq``."""
    lines = await service(request).platform.export_feedback(principal)
    body = "".join(json.dumps(line, sort_keys=True, default=str) + "\n" for line in lines)
    return Response(body, media_type="application/x-ndjson", headers=_PRIVATE)


@router.post("/conversations/{conversation_id}/share", response_model=ShareOut, status_code=201)
async def share_conversation(
    conversation_id: Id, request: Request, principal: Who, body: ShareIn | None = None
) -> ShareOut:
    """A link to one of the caller's conversations. It opens (``GET`` its ``url``) only for a
    signed-in reader who may read every document version the conversation cites at ``as_of``."""
    link = await service(request).platform.share(principal, conversation_id, body.as_of if body else None)
    return ShareOut(token=link.token, url=f"/v1/shared/{link.token}", as_of=link.as_of)


@router.get("/shared/{token}", response_model=SharedOut)
async def open_shared(token: Id, request: Request, response: Response, principal: Who) -> SharedOut:
    """A shared conversation; 404, as for a link that does not exist, unless the caller may read
    every version it cites at the link's ``as_of``."""
    link, thread = await service(request).platform.open_shared(principal, token)
    response.headers.update(_PRIVATE)
    turns = [
        SharedTurnOut(
            question=t.question,
            as_of=t.as_of,
            known_at=t.known_at,
            created_at=t.created_at,
            answer=AnswerOut.model_validate(t.answer),
        )
        for t in thread.turns
    ]
    return SharedOut(title=thread.conversation.title, as_of=link.as_of, turns=turns)
