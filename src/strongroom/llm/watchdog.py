"""Deadlines for a streamed HTTP response with one timer per response, not one per read.

A stream of a few hundred events would otherwise arm and cancel a timer for every read.
The watchdog keeps one timer at the nearest deadline: the first-token deadline until the
first token, then the earlier of the total deadline and "idle seconds after the last
read began". The timer re-arms itself lazily when reads moved the idle deadline, and when a
deadline really passes it shuts the connection's socket down, so the pending read fails at
once; the reader then asks :attr:`Watchdog.expired` which deadline it was.
"""

from __future__ import annotations

import asyncio
import socket
import time
import weakref
from typing import Any, Protocol

__all__ = ["Watchdog"]

_sockets: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


class _Socket(Protocol):
    def shutdown(self, how: int, /) -> None: ...


class Watchdog:
    """Enforce first-token, idle and total deadlines on one response's socket.

    dog = Watchdog.attach(response, loop, first_deadline, total_deadline, idle_s)
    if dog is None:   # no socket to watch (a test transport): time each read instead
        ...
    try:
        async for chunk in response.aiter_raw():
            dog.chunk(got_token=...)
    except httpcore.ReadError:
        if dog.expired: raise BackendTimeout(dog.expired)
    finally:
        dog.cancel()
    """

    __slots__ = ("_first", "_handle", "_idle", "_last", "_loop", "_now", "_sock", "_total", "expired", "got_token")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: _Socket, first: float, total: float, idle: float) -> None:
        self._loop = loop
        # asyncio's own loops tell time with time.monotonic: call it directly on every read
        self._now = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        self._sock = sock
        self._first = first
        self._total = total
        self._idle = idle
        self._last = 0.0
        self.got_token = False
        #: which deadline passed ("before the first token", "between tokens",
        #: "past the total timeout"), or None while none has
        self.expired: str | None = None
        self._handle = loop.call_at(self._due(), self._fire)

    @classmethod
    def attach(
        cls, response: Any, loop: asyncio.AbstractEventLoop, first: float, total: float, idle: float
    ) -> Watchdog | None:
        """A watchdog on ``response``'s socket, or None when the transport exposes none."""
        stream = response.extensions.get("network_stream")
        if stream is None:
            return None
        try:
            sock = _sockets[stream]
        except (KeyError, TypeError):  # TypeError: a stream that takes no weak reference
            # anyio builds every socket attribute (a getpeername call among them) to answer
            # this, so a pooled connection's socket is looked up once, not per request
            sock = stream.get_extra_info("socket")
            if not callable(getattr(sock, "shutdown", None)):  # socket.socket or asyncio's TransportSocket
                return None
            try:
                _sockets[stream] = sock
            except TypeError:
                pass
        return cls(loop, sock, first, total, idle)

    def _due(self) -> float:
        if not self.got_token:
            return self._first
        return min(self._total, self._last + self._idle)

    def chunk(self, *, got_token: bool) -> None:
        """Reading goes on (``got_token``: answer text has arrived): restart the idle window."""
        if got_token:
            self._last = self._now()
            if not self.got_token:
                # the first token swaps the first-token deadline for a possibly earlier one
                self.got_token = True
                self._handle.cancel()
                self._handle = self._loop.call_at(self._due(), self._fire)

    def _fire(self) -> None:
        due = self._due()
        if self._loop.time() < due:  # a chunk moved the deadline: sleep until the new one
            self._handle = self._loop.call_at(due, self._fire)
            return
        if not self.got_token:
            self.expired = "before the first token"
        elif due >= self._total:
            self.expired = "past the total timeout"
        else:
            self.expired = "between tokens"
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: the read has failed or finished anyway

    def cancel(self) -> None:
        self._handle.cancel()
