"""Conversations in the application layer: follow-ups keep their context, everything is the
owner's alone, feedback carries the answer's audit seq, and a share link opens only for a
reader of every version the conversation cites, at the link's as_of (through the sync
facade, :class:`~strongroom.service.Platform`, over a real store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.errors import NotFound
from strongroom.service import AskRequest, IngestRequest, Platform
from strongroom.service.conversations import NO_SHARE, WITHHELD, cited_versions, needs_context, retrieval_query
from strongroom.testing import HashEmbedder
from strongroom.types import Principal

READER = frozenset({"reader"})
#: marker -> (ACL, published, text). Both documents speak of margins; only context tells them apart.
DOCS = {
    "alphacorp": (
        "public",
        "2023-03-01",
        "Alphacorp quarterly report\n\nAlphacorp revenue rose to 42 million dollars in the quarter. "
        "The Alphacorp net margin improved to 12 percent.\n",
    ),
    "zephyr": (
        "research",
        "2023-03-01",
        "Zephyr quarterly report\n\nThe margin of Zephyr widened. Margin guidance was raised; "
        "the margin outlook and margin targets for the margin year are higher.\n",
    ),
    "kestrel": (
        "public",
        "2024-01-15",
        "Kestrel quarterly report\n\nKestrel revenue fell to 7 million dollars in the quarter.\n",
    ),
}


def who(name: str, *groups: str) -> Principal:
    return Principal(name, frozenset(groups), READER)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    files = tmp_path / "files"
    files.mkdir()
    with Platform.open(Settings(home=tmp_path / "home", embedder="hash"), embedder=HashEmbedder(64)) as p:
        admin = p.principal("root", ["public", "research"])
        for marker, (acl, published, text) in DOCS.items():
            (files / f"{marker}.txt").write_text(text)
            request = IngestRequest(paths=(files / f"{marker}.txt",), acl=frozenset({acl}), published=published)
            assert p.ingest(admin, request).ingested == 1
        yield p


def doc_id(p: Platform, marker: str) -> str:
    admin = p.principal("root", ["public", "research"])
    return p.find_document(admin, f"{marker}.txt").document_id


def cited_docs(answer: object) -> set[str]:
    assert isinstance(answer, dict)
    return {d for d, _ in cited_versions(answer)}


def first_cited(answer: object) -> set[str]:
    """The documents the answer's first claim cites."""
    assert isinstance(answer, dict) and answer["claims"]
    return {c["document_id"] for c in answer["claims"][0]["citations"]}


def audit(p: Platform) -> list[dict[str, object]]:
    return list(p.audit_records(p.principal("root", ["public"])))


# -- follow-up context (pure) -------------------------------------------------------------


def test_a_short_or_leaning_question_takes_the_previous_query_and_a_standalone_one_does_not() -> None:
    first = "What was Alphacorp revenue in the quarter?"
    assert not needs_context(first)
    assert needs_context("and the margin?")
    assert needs_context("Why did it change so much compared with the year before?")
    assert retrieval_query(first, "and the margin?") == f"{first} and the margin?"
    assert retrieval_query(None, "and the margin?") == "and the margin?"
    assert retrieval_query(first, "What were Kestrel net sales in the quarter?") == (
        "What were Kestrel net sales in the quarter?"
    )
    long = " ".join(f"w{i}" for i in range(100))
    assert retrieval_query(long, "and then?").split()[:-2] == long.split()[-40:]


# -- asking in a conversation -----------------------------------------------------------------


def test_a_follow_up_is_retrieved_with_the_previous_question_and_shown_as_asked(platform: Platform) -> None:
    ana = who("ana", "public", "research")
    first = platform.converse(ana, None, AskRequest(question="What was Alphacorp revenue in the quarter?"))
    follow = platform.converse(ana, first.conversation_id, AskRequest(question="and the margin?"))
    assert follow.conversation_id == first.conversation_id
    assert follow.query == "What was Alphacorp revenue in the quarter? and the margin?"
    assert follow.answer["question"] == "and the margin?"
    assert first_cited(follow.answer) == {doc_id(platform, "alphacorp")}
    # the control: the same words with no context are about Zephyr's margins
    alone = platform.converse(ana, None, AskRequest(question="and the margin?"))
    assert first_cited(alone.answer) == {doc_id(platform, "zephyr")}
    # each turn keeps the seq of its ask's audit record, which holds what was retrieved
    records = {r["seq"]: r for r in audit(platform)}
    assert records[follow.audit_seq]["action"] == "conversations.ask"
    assert records[follow.audit_seq]["query"] == follow.query
    thread = platform.conversation(ana, first.conversation_id)
    assert [t.question for t in thread.turns] == ["What was Alphacorp revenue in the quarter?", "and the margin?"]
    assert [c.id for c in platform.conversations(ana)] == [alone.conversation_id, first.conversation_id]


def test_a_follow_up_without_clocks_keeps_the_conversations_as_of(platform: Platform) -> None:
    ana = who("ana", "public")
    first = platform.converse(ana, None, AskRequest(question="Kestrel revenue in the quarter", as_of="2023-06-30"))
    assert doc_id(platform, "kestrel") not in cited_docs(first.answer)  # not yet published then
    follow = platform.converse(ana, first.conversation_id, AskRequest(question="and what did it fall to?"))
    assert follow.as_of == "2023-06-30"
    assert doc_id(platform, "kestrel") not in cited_docs(follow.answer)


def test_questions_and_comments_are_kept_redacted(platform: Platform) -> None:
    ana = who("ana", "public")
    turn = platform.converse(ana, None, AskRequest(question="Alphacorp revenue password: Hunter2Secret!x"))
    thread = platform.conversation(ana, turn.conversation_id)
    assert "Hunter2Secret" not in thread.turns[0].question + thread.conversation.title + turn.query
    given = platform.feedback(ana, turn.conversation_id, turn.id, "down", "card 4111 1111 1111 1111 was wrong")
    assert "4111" not in given.comment


# -- owner only ---------------------------------------------------------------------------------


def test_another_users_conversation_is_not_found_exactly_as_one_that_does_not_exist(platform: Platform) -> None:
    ana, bob = who("ana", "public"), who("bob", "public", "research")
    turn = platform.converse(ana, None, AskRequest(question="What was Alphacorp revenue?"))
    cid = turn.conversation_id
    attempts = {
        "get": lambda c: platform.conversation(bob, c),
        "delete": lambda c: platform.delete_conversation(bob, c),
        "ask": lambda c: platform.converse(bob, c, AskRequest(question="and the margin?")),
        "share": lambda c: platform.share(bob, c),
        "feedback": lambda c: platform.feedback(bob, c, turn.id, "up"),
    }
    for name, attempt in attempts.items():
        messages = []
        for target in (cid, "no-such-conversation-id"):
            with pytest.raises(NotFound) as refused:
                attempt(target)
            messages.append(str(refused.value))
        assert messages[0] == messages[1], name
    assert platform.conversations(bob) == []
    assert len(platform.conversation(ana, cid).turns) == 1  # nothing bob did reached it
    assert platform.conversation(ana, cid).feedback == {}
    denied = [r for r in audit(platform) if r["principal"] == "bob" and r["action"] != "conversations.list"]
    assert {r["outcome"] for r in denied} == {"not_found"}
    assert {r["action"] for r in denied} >= {"conversations.get", "conversations.ask", "conversations.feedback"}


def test_feedback_carries_the_answers_audit_seq_and_the_export_holds_only_the_callers(platform: Platform) -> None:
    ana, bob = who("ana", "public"), who("bob", "public")
    mine = platform.converse(ana, None, AskRequest(question="What was Alphacorp revenue?"))
    theirs = platform.converse(bob, None, AskRequest(question="What was Alphacorp net margin?"))
    with pytest.raises(NotFound):  # bob's turn, under bob's conversation id, typed by ana
        platform.feedback(ana, theirs.conversation_id, theirs.id, "down", "wrong")
    with pytest.raises(NotFound):  # bob's turn under ana's own conversation
        platform.feedback(ana, mine.conversation_id, theirs.id, "down", "wrong")
    platform.feedback(bob, theirs.conversation_id, theirs.id, "down", "bob says no")
    given = platform.feedback(ana, mine.conversation_id, mine.id, "up", "cited the right page")
    assert given.audit_seq == mine.audit_seq is not None
    lines = platform.export_feedback(ana)
    assert [(x["turn_id"], x["rating"], x["comment"], x["audit_seq"]) for x in lines] == [
        (mine.id, "up", "cited the right page", mine.audit_seq)
    ]
    assert lines[0]["question"] == "What was Alphacorp revenue?"
    assert lines[0]["citations"] and lines[0]["claims"]
    admin = platform.principal("root", ["public"])  # an admin exports its own too, never bob's
    assert platform.export_feedback(admin) == []
    assert "bob says no" not in repr(platform.export_feedback(ana))


def test_deleting_a_conversation_removes_its_turns_and_links(platform: Platform) -> None:
    ana = who("ana", "public")
    turn = platform.converse(ana, None, AskRequest(question="What was Alphacorp revenue?"))
    link = platform.share(ana, turn.conversation_id)
    platform.delete_conversation(ana, turn.conversation_id)
    with pytest.raises(NotFound):
        platform.conversation(ana, turn.conversation_id)
    with pytest.raises(NotFound, match=NO_SHARE):
        platform.open_shared(ana, link.token)


# -- share links --------------------------------------------------------------------------------


def _shared(platform: Platform, owner: Principal, *questions: str, as_of: str | None = None) -> str:
    cid = None
    for q in questions:
        cid = platform.converse(owner, cid, AskRequest(question=q)).conversation_id
    assert cid is not None
    return platform.share(owner, cid, as_of).token


def _refusal(platform: Platform, opener: Principal, token: str) -> str:
    with pytest.raises(NotFound) as refused:
        platform.open_shared(opener, token)
    return str(refused.value)


def test_a_link_opens_only_for_readers_of_every_cited_document(platform: Platform) -> None:
    owner = who("ana", "public", "research")
    token = _shared(platform, owner, "What was Alphacorp revenue in the quarter?", "Zephyr margin guidance")
    link, thread = platform.open_shared(who("carl", "public", "research"), token)
    cited = {d for t in thread.turns for d, _ in cited_versions(t.answer)}
    assert cited >= {doc_id(platform, "alphacorp"), doc_id(platform, "zephyr")}
    assert link.as_of and thread.feedback == {}
    nonexistent = _refusal(platform, who("carl", "public", "research"), "x" * 32)
    assert nonexistent == NO_SHARE
    assert _refusal(platform, who("dan", "public"), token) == nonexistent  # may not read Zephyr


def test_a_link_at_an_as_of_before_a_cited_version_was_published_does_not_open(platform: Platform) -> None:
    owner = who("ana", "public")
    token = _shared(platform, owner, "Kestrel revenue fell in the quarter", as_of="2023-06-30")
    assert _refusal(platform, owner, token) == NO_SHARE  # Kestrel was published in 2024
    later = _shared(platform, owner, "Kestrel revenue fell in the quarter", as_of="2024-06-30")
    platform.open_shared(owner, later)


def test_a_link_stops_opening_when_a_cited_document_is_closed_or_deleted(platform: Platform) -> None:
    owner, carl = who("ana", "public", "research"), who("carl", "public")
    admin = platform.principal("root", ["public", "research"])
    token = _shared(platform, owner, "What was Alphacorp revenue in the quarter?")
    platform.open_shared(carl, token)
    platform.set_acl(admin, doc_id(platform, "alphacorp"), ["research"])
    assert _refusal(platform, carl, token) == NO_SHARE
    platform.open_shared(owner, token)  # still a reader
    alphacorp = doc_id(platform, "alphacorp")
    platform.delete(admin, alphacorp)
    assert _refusal(platform, owner, token) == NO_SHARE
    # the owner's own history withholds the answer that quotes the deleted document
    cid = platform.conversations(owner)[0].id
    shown = platform.conversation(owner, cid).turns[0].answer
    assert shown["answer"] == WITHHELD and shown["citations"] == [] and shown["claims"] == []
    opened = [r for r in audit(platform) if r["action"] == "conversations.shared"]
    assert [r["outcome"] for r in opened] == ["ok", "not_found", "ok", "not_found"]
    assert all(token not in str(r) for r in opened)  # the record names a prefix, never the whole token


def test_a_model_written_answer_needs_every_passage_it_read_not_only_the_cited_ones(platform: Platform) -> None:
    """A model may state, or mis-cite, what it read: its stored answer counts every passage
    retrieved for it. The extractive generator's text is its citations', so only they count."""
    owner = who("ana", "public", "research")
    token = _shared(platform, owner, "What was Alphacorp revenue in the quarter?")
    (turn,) = platform.open_shared(owner, token)[1].turns
    zephyr = doc_id(platform, "zephyr")
    read = {d for d, _ in turn.answer["context"]}
    assert zephyr in read and zephyr not in cited_docs(turn.answer)  # extractive: the quotes decide
    platform.open_shared(who("dan", "public"), token)
    written = {**turn.answer, "generator": "llm:chat"}
    assert zephyr in cited_docs(written)  # a model's answer: everything it read
