"""Conversations: each user's questions and answers, follow-ups, feedback and share links.

Operations in the style of :class:`~strongroom.service.operations.Operations`: each takes a
:class:`~strongroom.types.Principal` (role ``reader``) and returns an
:class:`~strongroom.service.operations.Outcome` with its audit records; the drivers
(:class:`~strongroom.service.AsyncPlatform`, :class:`~strongroom.service.Platform`) run them on
the store's thread. The rules:

- **Owner only.** A conversation, its turns and their feedback are their owner's; anyone
  else's id, typed by hand, is :class:`~strongroom.errors.NotFound` exactly as one that does
  not exist. The feedback export holds only the caller's own feedback (admins included: an
  answer quotes documents its asker could read, not necessarily the exporter).
- **Follow-ups keep the context** (:func:`retrieval_query`): a short question, or one that
  leans on the previous one ("and in 2022?", "what drove it?"), is retrieved as the previous
  turn's query followed by the question; the answer shows the question as asked. A question
  that asks no clock keeps the previous turn's ``as_of``/``known_at``.
- **No secret is kept.** Questions, titles and comments are stored redacted, as the audit
  log keeps a query (the answer is written from the question as typed).
- **Stored answers are shown again only while they may be read.** An answer is kept as it
  was returned (its JSON, with the seq of its audit record); before its quotes are shown
  again, every document version it cites is re-checked for the reader at the turn's clocks
  through the same visibility rules as search (:func:`~strongroom.service.visibility.visible_documents`):
  the owner's own history withholds an answer whose documents were deleted or closed to
  them, and a share link opens only for a reader who may read every version the
  conversation cites at the link's ``as_of``; otherwise it is the same NotFound as a link
  that does not exist.

    convs = Conversations(ops, SqliteConversationStore(settings.catalog_path))
    follow = convs.follow_up(ana, None, AskRequest(question="What were Apple's net sales?")).result()
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from strongroom.errors import NotFound, QueryError, StrongroomError
from strongroom.ingest.understand.redaction import redact_query
from strongroom.rag import EXTRACTIVE_VERSION
from strongroom.service.clock import Clocks, TimeInput
from strongroom.service.conversation_store import (
    Conversation,
    ConversationStore,
    Feedback,
    Rating,
    Share,
    Thread,
    Turn,
    new_id,
    now,
)
from strongroom.service.operations import Operations, Outcome
from strongroom.service.requests import AskRequest, View
from strongroom.service.visibility import visible_documents
from strongroom.types import Answer, Citation, Principal

__all__ = [
    "NO_SHARE",
    "WITHHELD",
    "Conversations",
    "FollowUp",
    "answer_record",
    "cited_versions",
    "needs_context",
    "retrieval_query",
]

#: the one message of a share link that does not open, whatever the reason
NO_SHARE = "no such shared conversation"
#: what an answer says in place of quotes its reader may no longer read
WITHHELD = "This answer cites documents you may not read now (deleted, or their access changed); it is withheld."
#: a follow-up of at most this many words takes the previous question's context
SHORT_WORDS = 6
#: at most this many words of context come along
CONTEXT_WORDS = 40
_LEANING = frozenset(
    "it its it's they them their theirs this that these those he she him his her there same "
    "former latter above previous also".split()
)
_OPENERS = ("and ", "what about", "how about", "but ", "then ", "so ")
_WORD = re.compile(r"[a-z']+")
T = TypeVar("T")


def needs_context(question: str) -> bool:
    """Whether ``question`` leans on the one before: short, a pronoun, or an opener like "and".

    >>> needs_context("and in 2022?"), needs_context("What were Apple's total net sales in 2023?")
    (True, False)
    """
    text = question.strip().lower()
    words = _WORD.findall(text)
    return len(words) <= SHORT_WORDS or text.startswith(_OPENERS) or not _LEANING.isdisjoint(words)


def retrieval_query(previous: str | None, question: str) -> str:
    """What a turn retrieves with: ``question`` alone, or, when it needs context, the last
    :data:`CONTEXT_WORDS` words of the previous turn's query followed by it (so context
    carries along a chain of follow-ups, and a standalone question starts afresh).

    >>> retrieval_query("What were Apple's net sales?", "and in 2022?")
    "What were Apple's net sales? and in 2022?"
    """
    if not previous or not needs_context(question):
        return question
    return " ".join([*previous.split()[-CONTEXT_WORDS:], question.strip()])


def _citation(c: Citation) -> dict[str, Any]:
    return {**dataclasses.asdict(c), "label": c.label}


def answer_record(answer: Answer, asked: str) -> dict[str, Any]:
    """The answer as returned to the user (the JSON shape of ``/v1/ask``), showing ``asked``."""
    return {
        "question": asked,
        "found": answer.found,
        "answer": answer.text,
        "claims": [{"text": c.text, "citations": [_citation(x) for x in c.citations]} for c in answer.claims],
        "citations": [_citation(x) for x in answer.citations],
        "generator": answer.generator,
        "metadata": dict(answer.metadata),
        # every passage the generator read, cited or not: a model may state (or mis-cite) what
        # it read, so whoever sees this answer later must be able to read all of them
        "context": sorted({(h.version.document_id, h.version.id) for h in answer.hits}),
    }


def _withheld(answer: Mapping[str, Any]) -> dict[str, Any]:
    return {**answer, "found": False, "answer": WITHHELD, "claims": [], "citations": [], "metadata": {}}


def cited_versions(answer: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(document id, version id) of every citation in a stored answer, claims included, and,
    when a model wrote it, of every passage the model read (``context``): a model may state
    or mis-cite what it read, so showing its answer again requires all of them. The
    extractive generator's text is its citations' quotes and labels, nothing else."""
    found: list[Mapping[str, Any]] = list(answer.get("citations", []))
    for claim in answer.get("claims", []):
        found += claim.get("citations", [])
    cited = {(str(c["document_id"]), str(c["version_id"])) for c in found}
    if answer.get("generator") == EXTRACTIVE_VERSION:
        return cited
    return cited | {(str(d), str(v)) for d, v in answer.get("context", [])}


def _kept(text: str) -> str:
    """What the history keeps of text a user typed: secrets replaced by markers, as in the audit log."""
    return redact_query(text)[0] if text else text


def _clock(value: TimeInput) -> str | None:
    return value if value is None or isinstance(value, str) else value.isoformat()


@dataclass(frozen=True)
class FollowUp:
    """A question about to be asked in a conversation: ``request`` is what is retrieved and
    answered (the question with its context, the clocks it keeps), ``asked`` what was typed
    (as the history keeps it: redacted)."""

    conversation: Conversation
    new: bool
    asked: str
    request: AskRequest


class Conversations:
    """The conversation operations over one conversation store and the catalog of ``ops``.
    Not thread-safe: call it from the store's thread (the drivers do)."""

    def __init__(self, ops: Operations, store: ConversationStore) -> None:
        self.ops = ops
        self.store = store

    def close(self) -> None:
        self.store.close()

    # -- shared pieces ---------------------------------------------------------------------

    def _own(self, principal: Principal, conversation_id: str) -> Thread:
        thread = self.store.load(conversation_id)
        if thread is None or thread.conversation.owner != principal.name:
            raise NotFound("no such conversation")
        return thread

    def _readable(self, principal: Principal, versions: Iterable[tuple[str, str]], view: View) -> bool:
        """Whether ``principal`` may read every one of ``versions`` at the view's clocks: the
        same rules as search and the document pages (a deleted document has no version)."""
        wanted: dict[str, set[str]] = {}
        for document_id, version_id in versions:
            wanted.setdefault(document_id, set()).add(version_id)
        if not wanted:
            return True
        scope, _ = self.ops.scope(principal, view)
        for document_id, version_ids in wanted.items():
            seen = visible_documents(self.ops.store.versions(document_id), scope).get(document_id)
            if seen is None or not version_ids <= {v.id for v in seen.history}:
                return False
        return True

    def _shown(self, principal: Principal, thread: Thread) -> Thread:
        """``thread`` with each answer withheld that its owner may no longer read at its clocks."""
        turns = tuple(
            t
            if self._readable(principal, cited_versions(t.answer), View(as_of=t.as_of, known_at=t.known_at))
            else replace(t, answer=_withheld(t.answer))
            for t in thread.turns
        )
        return replace(thread, turns=turns)

    # -- conversations ---------------------------------------------------------------------

    def create(self, principal: Principal, title: str = "") -> Outcome[Conversation]:
        """A new, empty conversation of ``principal``."""

        def body() -> tuple[Conversation, dict[str, object]]:
            self.ops.require(principal, "reader")
            conversation = Conversation(new_id(), principal.name, _kept(title.strip()[:200]), now())
            self.store.save(conversation)
            return conversation, {"target": conversation.id}

        return self.ops.run_audited(principal, "conversations.create", {}, body)

    def mine(self, principal: Principal) -> Outcome[list[Conversation]]:
        """``principal``'s conversations, newest first."""

        def body() -> tuple[list[Conversation], dict[str, object]]:
            self.ops.require(principal, "reader")
            found = self.store.conversations(principal.name)
            return found, {"detail": f"{len(found)} conversations"}

        return self.ops.run_audited(principal, "conversations.list", {}, body)

    def get(self, principal: Principal, conversation_id: str) -> Outcome[Thread]:
        """One of ``principal``'s conversations, each answer re-checked (withheld if unreadable)."""

        def body() -> tuple[Thread, dict[str, object]]:
            self.ops.require(principal, "reader")
            return self._shown(principal, self._own(principal, conversation_id)), {}

        return self.ops.run_audited(principal, "conversations.get", {"target": conversation_id}, body)

    def delete(self, principal: Principal, conversation_id: str) -> Outcome[str]:
        """Delete one of ``principal``'s conversations with its turns, feedback and links."""

        def body() -> tuple[str, dict[str, object]]:
            self.ops.require(principal, "reader")
            self._own(principal, conversation_id)
            self.store.delete(conversation_id)
            return conversation_id, {}

        return self.ops.run_audited(principal, "conversations.delete", {"target": conversation_id}, body)

    # -- asking ------------------------------------------------------------------------------

    def follow_up(self, principal: Principal, conversation_id: str | None, request: AskRequest) -> Outcome[FollowUp]:
        """The first half of an ask in a conversation (a new one when ``conversation_id`` is
        None, saved only with its first turn): the question with its context and clocks.
        Audited only if it fails; the ask records itself, :meth:`add_turn` the turn."""
        try:
            self.ops.require(principal, "reader")
            if conversation_id is None:
                thread = Thread(Conversation(new_id(), principal.name, "", now()), ())
            else:
                thread = self._own(principal, conversation_id)
            conversation = thread.conversation
            if not conversation.title:  # an untitled conversation is named by its first question
                conversation = replace(conversation, title=_kept(" ".join(request.question.split())[:80]))
            last = thread.turns[-1] if thread.turns else None
            asked = request.question
            ask = replace(request, question=retrieval_query(last.query if last else None, asked))
            shown = _kept(asked)
            if last is not None and request.as_of is None and request.known_at is None:
                ask = replace(ask, as_of=last.as_of, known_at=last.known_at)
        except StrongroomError as exc:
            return self.ops.refused(principal, "conversations.ask", exc, target=conversation_id or "")
        follow = FollowUp(conversation, conversation_id is None, shown, ask)
        return Outcome(follow, None, ())

    def add_turn(self, principal: Principal, follow: FollowUp, answer: Answer, audit_seq: int | None) -> Outcome[Turn]:
        """Keep an answered follow-up as a turn, with the seq of the ask's audit record."""
        conversation = follow.conversation
        request = follow.request

        def body() -> tuple[Turn, dict[str, object]]:
            stored = None if follow.new else self.store.load(conversation.id)
            if not follow.new and stored is None:
                raise NotFound("no such conversation (it was deleted while the question was answered)")
            if stored is None or stored.conversation.title != conversation.title:
                self.store.save(conversation)  # new, or named by its first question
            turn = Turn(
                new_id(),
                conversation.id,
                follow.asked,
                _kept(request.question),
                answer_record(answer, follow.asked),
                _clock(request.as_of),
                _clock(request.known_at),
                audit_seq,
                now(),
            )
            self.store.save(turn)
            return turn, {"detail": f"turn {turn.id}", "filters": {"answer_seq": audit_seq, "new": follow.new}}

        return self.ops.run_audited(principal, "conversations.turn", {"target": conversation.id}, body)

    # -- feedback ----------------------------------------------------------------------------

    def feedback(
        self, principal: Principal, conversation_id: str, turn_id: str, rating: Rating, comment: str = ""
    ) -> Outcome[Feedback]:
        """Rate one of ``principal``'s own answers (``up``/``down``, a comment of at most 2,000
        characters); a later rating replaces the earlier one."""

        def body() -> tuple[Feedback, dict[str, object]]:
            self.ops.require(principal, "reader")
            if rating not in ("up", "down"):
                raise QueryError("rating is 'up' or 'down'")
            if len(comment) > 2000:
                raise QueryError("a comment is at most 2,000 characters")
            thread = self._own(principal, conversation_id)
            turn = next((t for t in thread.turns if t.id == turn_id), None)
            if turn is None:
                raise NotFound("no such conversation")
            given = Feedback(turn_id, principal.name, rating, _kept(comment.strip()), now(), turn.audit_seq)
            self.store.save(given)
            return given, {"filters": {"rating": rating, "answer_seq": turn.audit_seq}}

        target: dict[str, object] = {"target": f"{conversation_id}/{turn_id}"}
        return self.ops.run_audited(principal, "conversations.feedback", target, body)

    def export(self, principal: Principal) -> Outcome[list[dict[str, Any]]]:
        """``principal``'s own feedback for evaluation, oldest conversation first: one dict per
        rated turn (question, the query retrieved, answer text, claims, citations, rating,
        comment, clocks, the answer's audit seq). An answer it may no longer read is withheld."""

        def body() -> tuple[list[dict[str, Any]], dict[str, object]]:
            self.ops.require(principal, "reader")
            lines: list[dict[str, Any]] = []
            for conversation in reversed(self.store.conversations(principal.name)):
                thread = self.store.load(conversation.id)
                if thread is None or not thread.feedback:
                    continue
                for turn in self._shown(principal, thread).turns:
                    given = thread.feedback.get(turn.id)
                    if given is not None and given.owner == principal.name:
                        lines.append(_line(turn, given))
            return lines, {"detail": f"{len(lines)} rated answers"}

        return self.ops.run_audited(principal, "feedback.export", {}, body)

    # -- sharing -----------------------------------------------------------------------------

    def share(self, principal: Principal, conversation_id: str, as_of: TimeInput = None) -> Outcome[Share]:
        """A link to one of ``principal``'s conversations, pinned to ``as_of`` (default: now):
        it opens for whoever may read every version the conversation cites at that instant."""

        def body() -> tuple[Share, dict[str, object]]:
            self.ops.require(principal, "reader")
            self._own(principal, conversation_id)
            pinned = Clocks.parse(as_of).applied()[0].isoformat()
            link = Share(new_id(), conversation_id, principal.name, pinned, now())
            self.store.save(link)
            return link, {"filters": {"as_of": pinned}}

        return self.ops.run_audited(principal, "conversations.share", {"target": conversation_id}, body)

    def open_shared(self, principal: Principal, token: str) -> Outcome[tuple[Share, Thread]]:
        """The shared conversation, for a reader who may read every version it cites at the
        link's ``as_of``; :data:`NO_SHARE` for everyone else, as for a link that does not exist."""

        def body() -> tuple[tuple[Share, Thread], dict[str, object]]:
            self.ops.require(principal, "reader")
            link = self.store.shared(token)
            thread = self.store.load(link.conversation_id) if link is not None else None
            if link is None or thread is None:
                raise NotFound(NO_SHARE)
            cited = {pair for t in thread.turns for pair in cited_versions(t.answer)}
            if not self._readable(principal, cited, View(as_of=link.as_of)):
                raise NotFound(NO_SHARE)
            shown = replace(thread, feedback={})
            return (link, shown), {"filters": {"as_of": link.as_of, "conversation": thread.conversation.id}}

        # the record names the link by a prefix of its token: enough to trace, not to open
        return self.ops.run_audited(principal, "conversations.shared", {"target": token[:8]}, body)


def _line(turn: Turn, given: Feedback) -> dict[str, Any]:
    answer = turn.answer
    return {
        "conversation_id": turn.conversation_id,
        "turn_id": turn.id,
        "question": turn.question,
        "query": turn.query,
        "as_of": turn.as_of,
        "known_at": turn.known_at,
        "answer": answer.get("answer", ""),
        "found": answer.get("found", False),
        "claims": answer.get("claims", []),
        "citations": answer.get("citations", []),
        "generator": answer.get("generator", ""),
        "rating": given.rating,
        "comment": given.comment,
        "rated_at": given.created_at.isoformat(),
        "audit_seq": turn.audit_seq,
    }
