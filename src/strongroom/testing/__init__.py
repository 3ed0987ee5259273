"""Fakes and contract suites for tests: real objects with deterministic edges, used instead
of mocks, and the behaviour every backend of a protocol must show.

Fakes: :class:`HashEmbedder` (from :mod:`strongroom.embed.hashing`, where the ``hash``
setting finds it) embeds without weights; :class:`ScriptedChatModel` answers from a script
of texts, tool calls (:class:`ScriptedReply`, :func:`tool_call`), errors and functions of the request.

Contracts, one per protocol; a backend's test subclasses one and supplies its fixture:
:class:`EmbedderContract` (fixture ``embedder``), :class:`ChatModelContract` (fixture
``chat_model``, a factory told what the model should say), and in their modules
:mod:`.store_contract`, :mod:`.bus_contract`, :mod:`.audit_contract`, :mod:`.key_contract`,
:mod:`.generator_contract`, :mod:`.route_contract`, :mod:`.limit_contract` (bucket
stores and request limiters) and :mod:`.conversation_contract`. :mod:`.openai_server` is a
scripted OpenAI-compatible server on loopback, for tests and benchmarks of the model gateway.
"""

from __future__ import annotations

from strongroom.embed.hashing import HashEmbedder
from strongroom.testing.chat import ScriptedChatModel, ScriptedReply, tool_call
from strongroom.testing.chat_contract import ChatModelContract
from strongroom.testing.embedder_contract import EmbedderContract

__all__ = ["ChatModelContract", "EmbedderContract", "HashEmbedder", "ScriptedChatModel", "ScriptedReply", "tool_call"]
