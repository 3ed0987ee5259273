"""Fakes and contract suites for tests: real objects with deterministic edges, used instead
of mocks, and the behaviour every backend of a protocol must show.

:class:`HashEmbedder` (from :mod:`strongroom.embed.hashing`, where the ``hash`` setting
finds it) embeds without weights; :mod:`.store_contract` is the Store contract.
"""

from __future__ import annotations

from strongroom.embed.hashing import HashEmbedder

__all__ = ["HashEmbedder"]
