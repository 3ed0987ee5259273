"""Real HTTP for tests: an ASGI app with uvicorn on 127.0.0.1 (an ephemeral port) in a thread
(:func:`live_server`), or ``strongroom serve`` in its own process (:func:`serve_process`)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    # uvicorn binds the port itself: handing it a pre-bound socket costs ~40 ms a request here
    for _attempt in range(5):
        port = _free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if server.started:
            break
        server.should_exit = True
        thread.join(timeout=10)
    else:
        raise RuntimeError("the test server did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def serve_process(home: Path, env: dict[str, str], *options: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``strongroom serve [options] --home home`` on a free port in its own process (with
    environment ``env``), once its ``/healthz`` answers, until the block ends (then killed)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "strongroom.cli", "serve", *options, "--home", str(home), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("the server did not start")
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
