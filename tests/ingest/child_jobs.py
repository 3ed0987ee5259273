"""Test-only jobs for :mod:`strongroom.ingest.bounded`: children that hang, crash, fail or lie.

Module-level functions, so a child imports them by name (this module imports little, so
that is quick). None of them ships: the production jobs are :mod:`strongroom.ingest.sandbox`'s.
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

from strongroom.errors import NotFound
from strongroom.ingest.bounded import Job


def _hang(request: Any, data: bytes) -> tuple[dict[str, Any], bytes]:
    while True:  # a renderer stuck in a loop: only the parent's kill ends it
        time.sleep(0.05)


def _segfault(request: Any, data: bytes) -> tuple[dict[str, Any], bytes]:
    ctypes.string_at(0)  # a NULL read, as a decoder's bug on a hostile image would make
    raise AssertionError("unreachable")


def _exit(request: Any, data: bytes) -> tuple[dict[str, Any], bytes]:
    os._exit(int(request))


def _echo(request: Any, data: bytes) -> tuple[dict[str, Any], bytes]:
    return {"request": request, "length": len(data)}, data[::-1]


def _raise(request: Any, data: bytes) -> tuple[dict[str, Any], bytes]:
    if request == "not found":
        raise NotFound("no page 9: the PDF has 4 pages")
    if request == "recursion":
        raise RecursionError("maximum recursion depth exceeded")
    if request == "memory":
        raise ValueError("decoder failed") from MemoryError()
    raise KeyError(request)


HANG = Job("hang", _hang)
SEGFAULT = Job("segfault", _segfault)
EXIT = Job("exit", _exit)
ECHO = Job("echo", _echo)
RAISE = Job("raise", _raise)
