#!/usr/bin/env python3
"""HTTP load on the service: a second process sends POST /v1/search for a fixed time.

The server (``create_app`` on uvicorn, one process) runs over a store built from the sec10q
corpus (20 10-Q PDFs under /work/shared/corpus/sec10q, ingested once into --home and reused)
or, without the corpus, over synthetic text. This process drives ``--clients`` concurrent
keep-alive connections for ``--seconds`` on loopback, each sending the corpus's questions in
turn with an API key, and reports throughput, latency percentiles, errors and the server's
resident memory before and after.

    python benchmarks/api_load_bench.py --seconds 60 --clients 20 --embedder minilm [--query-encoder onnx-int8]
        [--client raw]   # a lean load generator instead of httpx
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "sec10q"


def _rss_mib(pid: int) -> float:
    """Resident memory of the process tree (the server and its workers)."""
    total = 0.0
    for p in _tree(pid):
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) / 1024 for line in lines if line.startswith("VmRSS:"))
    return total


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server's worker processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        found += frontier
    return found


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds the process tree has used so far."""
    total = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(home: Path, embedder: str) -> tuple[list[str], str]:
    """Ingest the corpus (once) and make an API key; returns the questions and the key."""
    from strongroom.auth import open_key_store
    from strongroom.config import Settings
    from strongroom.ingest.pipeline import IngestOptions, ingest
    from strongroom.runtime import open_runtime

    settings = Settings(home=home, embedder=embedder)  # type: ignore[arg-type]
    runtime = open_runtime(settings)
    try:
        if not runtime.store.versions():
            started = time.perf_counter()
            if (CORPUS / "docs").is_dir():
                report = ingest(
                    [CORPUS / "docs"], runtime.store, runtime.embedder, IngestOptions(acl=frozenset({"public"}))
                )
            else:
                synthetic = home / "synthetic"
                synthetic.mkdir(exist_ok=True)
                for i in range(200):
                    (synthetic / f"doc{i}.txt").write_text(
                        f"Company {i} quarterly report\n\nNet sales were {i * 37 % 1000} million dollars. "
                        f"Operating income rose {i % 17} percent. Risk factors include rates and supply.\n"
                    )
                report = ingest([synthetic], runtime.store, runtime.embedder, IngestOptions(acl=frozenset({"public"})))
            runtime.store.save_indexes()
            print(
                f"ingested {report.ingested} files, {report.chunks} chunks in {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    finally:
        runtime.close()
    if (CORPUS / "qa.jsonl").exists():
        questions = [json.loads(line)["question"] for line in (CORPUS / "qa.jsonl").read_text().splitlines() if line]
    else:
        questions = ["net sales", "operating income", "risk factors", "quarterly report"]
    keys = open_key_store(settings)
    _, secret = keys.create("load-bench", frozenset({"readers", "public"}))
    keys.close()
    return questions, secret


class _RawClient:
    """One keep-alive HTTP/1.1 connection on asyncio streams with pre-encoded requests: a lean
    load generator, so that less of the two shared cores goes to the client (httpx spends about
    2 ms of CPU per request here, as much as a fifth of what the server spends)."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = (
            f"POST /v1/search HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def request(self, query: str) -> bytes:
        body = json.dumps({"query": query, "k": 10}).encode()
        return self.head + str(len(body)).encode() + b"\r\n\r\n" + body

    async def post(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length)
        if b"connection: close" in head.lower():
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def drive_raw(url: str, key: str, questions: list[str], clients: int, seconds: float) -> dict[str, object]:
    """Like :func:`drive` on :class:`_RawClient` connections; a reply counts when it is a 200
    whose JSON starts with a non-empty ``hits`` list (the body is not decoded)."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    host, port = url.removeprefix("http://").split(":")

    async def worker(n: int) -> None:
        conn = _RawClient(host, int(port), key)
        requests = [conn.request(q) for q in questions]
        i = n
        try:
            while time.perf_counter() < deadline:
                payload = requests[i % len(requests)]
                i += clients
                t = time.perf_counter()
                try:
                    status, body = await conn.post(payload)
                    kind = "" if status == 200 and body.startswith(b'{"hits":[{') else f"HTTP {status}"
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    kind = type(exc).__name__
                    await conn.close()
                if kind:
                    errors[kind] = errors.get(kind, 0) + 1
                else:
                    latencies.append(time.perf_counter() - t)
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(clients)))
    return _summary(latencies, errors, time.perf_counter() - started)


async def drive(url: str, key: str, questions: list[str], clients: int, seconds: float) -> dict[str, object]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits, timeout=30
    ) as client:

        async def worker(n: int) -> None:
            i = n
            while time.perf_counter() < deadline:
                q = questions[i % len(questions)]
                i += clients
                t = time.perf_counter()
                try:
                    r = await client.post("/v1/search", json={"query": q, "k": 10})
                    ok = r.status_code == 200 and bool(r.json()["hits"])
                    kind = "" if ok else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    kind = type(exc).__name__
                if kind:
                    errors[kind] = errors.get(kind, 0) + 1
                else:
                    latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(clients)))
        wall = time.perf_counter() - started
    return _summary(latencies, errors, wall)


def _summary(latencies: list[float], errors: dict[str, int], wall: float) -> dict[str, object]:
    latencies.sort()

    def pct(p: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1) if latencies else float("nan")
        )

    return {
        "requests_ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "seconds": round(wall, 1),
        "throughput_rps": round(len(latencies) / wall, 1),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else float("nan"),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--embedder", default="minilm", choices=["minilm", "hash"])
    parser.add_argument("--http", default="auto", choices=["auto", "h11", "httptools"], help="uvicorn's HTTP parser")
    parser.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"], help="uvicorn's event loop")
    parser.add_argument("--workers", type=int, default=1, help="server processes (strongroom serve --workers)")
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=None,
        help="the server's GIL switch interval (sys.setswitchinterval; Python's default is 5 ms)",
    )
    parser.add_argument(
        "--client",
        default="httpx",
        choices=["httpx", "raw"],
        help="load generator: httpx.AsyncClient, or raw HTTP/1.1 on asyncio streams (less CPU taken from the server)",
    )
    parser.add_argument(
        "--query-encoder",
        default="model",
        choices=["model", "onnx-int8"],
        help="what embeds queries in the server (STRONGROOM_QUERY_ENCODER)",
    )
    parser.add_argument(
        "--home", type=Path, default=None, help="store folder (default: /tmp/strongroom-bench-EMBEDDER)"
    )
    args = parser.parse_args()
    home = args.home or Path(f"/tmp/strongroom-bench-{args.embedder}")
    questions, key = prepare(home, args.embedder)
    port = _free_port()
    env = {
        **os.environ,
        "STRONGROOM_HOME": str(home),
        "STRONGROOM_EMBEDDER": args.embedder,
        "STRONGROOM_QUERY_ENCODER": args.query_encoder,
        "STRONGROOM_RATE_PER_S": "1000000",
        "STRONGROOM_RATE_BURST": "1000000",
        "STRONGROOM_ROLE_GROUPS": json.dumps({"reader": ["readers"], "ingester": [], "admin": []}),
    }
    switch = ""
    if args.switch_interval_ms:
        switch = f"import sys; sys.setswitchinterval({args.switch_interval_ms / 1000!r}); "
    code = (
        switch + "import logging, uvicorn; "
        "logging.getLogger('strongroom.api').setLevel(logging.WARNING); "
        "uvicorn.run('strongroom.api.app:create_app', factory=True, "
        f"host='127.0.0.1', port={port}, workers={args.workers}, http={args.http!r}, loop={args.loop!r}, "
        "log_config=None, access_log=False)"
    )
    server = subprocess.Popen([sys.executable, "-c", code], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        warm = asyncio.run(drive(url, key, questions, args.clients, 3.0))  # first queries build the indexes
        before = _rss_mib(server.pid)
        server_cpu, client_cpu = _cpu_s(server.pid), _own_cpu_s()
        driver = drive_raw if args.client == "raw" else drive
        result = asyncio.run(driver(url, key, questions, args.clients, args.seconds))
        server_cpu, client_cpu = _cpu_s(server.pid) - server_cpu, _own_cpu_s() - client_cpu
        after = _rss_mib(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    print(
        json.dumps(
            {
                "embedder": args.embedder,
                "query_encoder": args.query_encoder,
                "clients": args.clients,
                "client": args.client,
                "switch_interval_ms": args.switch_interval_ms,
                "workers": args.workers,
                "http": args.http,
                "loop": args.loop,
                "cpus": os.cpu_count(),
                "warmup_requests": warm["requests_ok"],
                **result,
                "server_cpu_ms_per_request": round(server_cpu * 1000 / max(1, int(result["requests_ok"])), 2),
                "client_cpu_ms_per_request": round(client_cpu * 1000 / max(1, int(result["requests_ok"])), 2),
                "server_rss_mib_before": round(before, 1),
                "server_rss_mib_after": round(after, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
