"""The local Redis the integration tests use (127.0.0.1:6379), and a skip mark without it."""

from __future__ import annotations

import socket

import pytest

REDIS = ("127.0.0.1", 6379)
REDIS_URL = f"redis://{REDIS[0]}:{REDIS[1]}/0"


def redis_up() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


#: skip a test (or, as ``pytestmark``, a module) when no Redis answers, saying why
needs_redis = pytest.mark.skipif(
    not redis_up(), reason=f"no Redis answering PING at {REDIS[0]}:{REDIS[1]}; start redis-server to run these"
)
