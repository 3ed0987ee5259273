"""The contract every conversation store passes
(:class:`~strongroom.service.conversation_store.ConversationStore`).

A backend's test subclasses :class:`ConversationStoreContract` and supplies ``conversations``:
a factory that opens a handle on one empty store each time it is called (a second call is
another process's handle on the same rows)::

    class TestSqliteConversations(ConversationStoreContract):
        @pytest.fixture
        def conversations(self, tmp_path): return lambda: SqliteConversationStore(tmp_path / "catalog.sqlite3")

The store decides nothing (who may see what is the application layer's), so the contract
checks what the application layer relies on: rows come back exactly as saved and in order,
an owner's list holds only what that owner named, a retitle changes only the title, a link
opens only by its whole token, a delete takes everything of one conversation and nothing
else, and nothing is kept that points at what is not there.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from strongroom.errors import StoreError
from strongroom.service.conversation_store import Conversation, ConversationStore, Feedback, Share, Turn, new_id

__all__ = ["ConversationStoreContract", "Opener"]

Opener = Callable[[], ConversationStore]

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)  # microseconds: instants come back exact


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def turn(conversation: Conversation, seconds: float, question: str = "net sales?", **fields: Any) -> Turn:
    """A turn of ``conversation`` asked ``seconds`` after T0; ``fields`` override the rest."""
    values: dict[str, Any] = {
        "id": new_id(),
        "conversation_id": conversation.id,
        "question": question,
        "query": question,
        "answer": {"answer": f"answer to {question}", "found": True, "claims": [], "citations": []},
        "as_of": None,
        "known_at": None,
        "audit_seq": None,
        "created_at": at(seconds),
    }
    return Turn(**{**values, **fields})


class ConversationStoreContract:
    """What every conversation store must do, through the protocol only."""

    @pytest.fixture
    def store(self, conversations: Opener) -> Iterator[ConversationStore]:
        store = conversations()
        yield store
        store.close()

    def started(
        self, store: ConversationStore, owner: str = "ana", seconds: float = 0, title: str = ""
    ) -> Conversation:
        conversation = Conversation(new_id(), owner, title or f"{owner}'s question", at(seconds))
        store.save(conversation)
        return conversation

    def test_a_thread_comes_back_exactly_as_saved_with_its_turns_oldest_first(self, store: ConversationStore) -> None:
        c = self.started(store)
        answer = {
            "answer": "Net sales were 81,797 — up 2 % ✓",
            "found": True,
            "claims": [{"text": "Net sales were 81,797", "citations": [{"document_id": "d1", "page": 4}]}],
            "citations": [{"document_id": "d1", "version_id": "v1", "page": 4, "score": 0.5}],
            "context": [["d1", "v1"], ["d2", "v9"]],
            "generator": "extractive",
            "nothing": None,
        }
        later = turn(c, 20, "and the margin?", query="net sales? and the margin?", as_of="2023-06-30T23:59:59+00:00",
                     known_at="2023-07-01T00:00:00+00:00", audit_seq=7)  # fmt: skip
        first = turn(c, 10, "net sales?", answer=answer, audit_seq=3)
        store.save(later)  # saved out of order: the turns are ordered by when they were asked
        store.save(first)
        thread = store.load(c.id)
        assert thread is not None
        assert thread.conversation == c
        assert thread.turns == (first, later)
        assert thread.turns[0].created_at.tzinfo is not None and thread.feedback == {}
        assert store.load("no-such-conversation") is None and store.load("") is None

    def test_each_owner_lists_only_their_own_newest_first(self, store: ConversationStore) -> None:
        middle = self.started(store, "ana", 20)
        oldest = self.started(store, "ana", 10)
        newest = self.started(store, "ana", 30)
        bobs = self.started(store, "bob", 40)
        assert store.conversations("ana") == [newest, middle, oldest]
        assert store.conversations("bob") == [bobs]
        for stranger in ("carl", "Ana", "an", "%", "_na", "ana ", ""):  # exact names only, no patterns
            assert store.conversations(stranger) == [], stranger

    def test_saving_a_conversation_again_changes_only_its_title(self, store: ConversationStore) -> None:
        c = self.started(store, "ana", 0, title="untitled")
        store.save(Conversation(c.id, "mallory", "What was Apple's net sales?", at(99)))
        thread = store.load(c.id)
        assert thread is not None
        assert thread.conversation == Conversation(c.id, "ana", "What was Apple's net sales?", c.created_at)
        assert store.conversations("mallory") == [] and len(store.conversations("ana")) == 1

    def test_a_later_rating_replaces_the_earlier_one_and_stays_with_its_turn(self, store: ConversationStore) -> None:
        c, other = self.started(store, "ana", 0), self.started(store, "ana", 1)
        rated, unrated = turn(c, 10), turn(c, 20)
        elsewhere = turn(other, 30)
        for t in (rated, unrated, elsewhere):
            store.save(t)
        store.save(Feedback(rated.id, "ana", "up", "", at(40), 3))
        replaced = Feedback(rated.id, "ana", "down", "cited the wrong page", at(50), 3)
        store.save(replaced)
        store.save(Feedback(elsewhere.id, "ana", "up", "fine", at(60), None))
        thread = store.load(c.id)
        assert thread is not None and dict(thread.feedback) == {rated.id: replaced}
        other_thread = store.load(other.id)
        assert other_thread is not None and set(other_thread.feedback) == {elsewhere.id}

    def test_a_link_opens_by_its_whole_token_only(self, store: ConversationStore) -> None:
        c = self.started(store)
        link = Share(new_id(), c.id, "ana", "2024-05-01T12:00:00+00:00", at(5))
        store.save(link)
        assert store.shared(link.token) == link
        for guess in (link.token[:-1], link.token + "x", link.token.upper(), link.token[:8], "", "%", c.id):
            assert store.shared(guess) is None, guess

    def test_deleting_a_conversation_takes_its_turns_feedback_and_links_and_nothing_else(
        self, store: ConversationStore
    ) -> None:
        doomed, kept = self.started(store, "ana", 0), self.started(store, "ana", 1)
        links: dict[str, Share] = {}
        for c in (doomed, kept):
            t = turn(c, 10)
            store.save(t)
            store.save(Feedback(t.id, "ana", "up", "", at(20), None))
            links[c.id] = Share(new_id(), c.id, "ana", "2024-05-01T12:00:00+00:00", at(30))
            store.save(links[c.id])
        before = store.load(kept.id)
        assert store.delete(doomed.id) is True
        assert store.delete(doomed.id) is False and store.delete("no-such-conversation") is False
        assert store.load(doomed.id) is None and store.shared(links[doomed.id].token) is None
        assert store.conversations("ana") == [kept]
        assert store.load(kept.id) == before and store.shared(links[kept.id].token) == links[kept.id]

    def test_nothing_is_kept_that_points_at_what_is_not_there(self, store: ConversationStore) -> None:
        """A turn, rating or link whose conversation (or turn) is gone is refused, so an answer
        that comes back after its conversation was deleted is not kept as an orphan."""
        gone = self.started(store)
        asked = turn(gone, 10)
        store.save(asked)
        store.delete(gone.id)
        link = Share(new_id(), gone.id, "ana", "2024-05-01T12:00:00+00:00", at(40))
        orphans: list[Turn | Feedback | Share] = [
            turn(gone, 20),
            Feedback(asked.id, "ana", "up", "", at(30), None),
            link,
        ]
        orphans.append(turn(Conversation("never-saved", "ana", "", T0), 50))
        for orphan in orphans:
            with pytest.raises(StoreError):
                store.save(orphan)
        assert store.load(gone.id) is None and store.load("never-saved") is None
        assert store.shared(link.token) is None and store.conversations("ana") == []

    def test_another_handle_reads_and_deletes_the_same_rows(
        self, store: ConversationStore, conversations: Opener
    ) -> None:
        c = self.started(store)
        t = turn(c, 10, audit_seq=12)
        store.save(t)
        other = conversations()  # another replica, opened after the writes
        try:
            thread = other.load(c.id)
            assert thread is not None and thread.turns == (t,)
            assert other.delete(c.id)
        finally:
            other.close()
        assert store.load(c.id) is None

    def test_one_handle_is_safe_to_share_between_threads(self, store: ConversationStore) -> None:
        c = self.started(store)
        saved: list[Turn] = []
        errors: list[BaseException] = []

        def ask(worker: int) -> None:
            try:
                for i in range(20):
                    t = turn(c, worker * 100 + i, f"question {worker}.{i}")
                    store.save(t)
                    saved.append(t)
                    assert store.load(c.id) is not None
            except BaseException as exc:  # reported below: a thread's failure would be lost
                errors.append(exc)

        threads = [threading.Thread(target=ask, args=(w,)) for w in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        thread = store.load(c.id)
        assert thread is not None
        assert list(thread.turns) == sorted(saved, key=lambda t: t.created_at)
