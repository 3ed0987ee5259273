"""Gateway overhead: the same fake OpenAI-compatible backend called directly, through
strongroom's gateway, and through LiteLLM's proxy, at 1, 10 and 50 concurrent streams.

    python benchmarks/gateway_bench.py                      # ~1 minute
    python benchmarks/gateway_bench.py --duration 1 --rounds 1   # a quick look
    python benchmarks/gateway_bench.py --token-delay 0.005       # a fast real model's pace
    LITELLM_VENV=/tmp/litellm-venv python benchmarks/gateway_bench.py

Modes (each request streams the same fixed reply to its end):

  direct   the leanest client: httpcore's connection pool (httpx's engine) with no client on
           top, raw bytes split into lines, each data line JSON-decoded
  httpx    the same loop on a raw httpx client (the floor before 2026-12-03, and the HTTP stack
           of the official openai SDK)
  backend  strongroom's OpenAICompatible adapter alone (SSE decoding, timeouts, deltas)
  gateway  Gateway -> OpenAICompatible: routing, breaker, budgets, concurrency cap, metrics
  litellm  raw httpx stream to LiteLLM's proxy (a separate process) in front of the backend

"Added latency" is a mode's percentile (or mean) minus the direct one at the same concurrency.
With ``--token-delay 0`` the client's event loop is saturated at 10 and 50 streams, so its
latency is queueing: the mean then follows throughput (Little's law: streams / req/s), while
p50 and p99 also move with how fairly the loop serves the streams.
The fake backend runs in its own process; strongroom's gateway is a library and runs in the
client's process, while LiteLLM's proxy is an extra HTTP hop: that is the comparison a bank
faces (embed the gateway vs. run a proxy), not a like-for-like HTTP front. Requests run in
closed loops (each worker sends the next request when the last one ends), in interleaved
rounds so that drift on a shared machine hits every mode alike. Prints JSON lines, then a
Markdown table. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpcore
import httpx
from prometheus_client import CollectorRegistry

from strongroom.llm import (
    Budget,
    ChatRequest,
    Deployment,
    Gateway,
    GatewayMetrics,
    Limits,
    OpenAICompatible,
    Rate,
    Route,
    StaticRoutes,
    Target,
)

LITELLM_PIN = "1.82.6"  # 1.82.7 and 1.82.8 were compromised on PyPI; never newer without review
PROMPT = "What was the bank's CET1 ratio at the end of the third quarter?"


def body(model: str) -> bytes:
    return json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
            "max_tokens": 64,
            "stream_options": {"include_usage": True},
        }
    ).encode()


# -- processes ------------------------------------------------------------------------------


def start_backend(tokens: int, token_delay: float = 0.0) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "strongroom.testing.openai_server",
            "--port",
            "0",
            "--tokens",
            str(tokens),
            "--token-delay",
            str(token_delay),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("LISTENING"):
        proc.kill()
        raise SystemExit(f"the fake backend did not start: {line!r}")
    return proc, int(line.split()[1])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def litellm_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or None


def start_litellm(venv: Path, backend_port: int, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: bench\n"
        "    litellm_params:\n"
        "      model: openai/bench\n"
        f"      api_base: http://127.0.0.1:{backend_port}/v1\n"
        "      api_key: sk-fake-not-a-secret\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  drop_params: true\n"
    )
    port = free_port()
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # never fetch the cost map from the network
        "LITELLM_LOG": "ERROR",
        "NO_PROXY": "*",
    }
    log = open(workdir / "litellm.log", "wb")
    cmd = [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1",
           "--port", str(port), "--num_workers", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"litellm exited with {proc.returncode}; see {workdir / 'litellm.log'}")
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1)
            if r.status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("litellm's proxy did not become ready within 180s")


# -- clients ----------------------------------------------------------------------------------

Call = Callable[[], Awaitable[float]]  # runs one request; returns time to first content (s)


async def _first_content(chunks: AsyncIterator[bytes], start: float) -> float:
    """Read an event stream to its end: raw bytes split into lines, each data line decoded;
    returns the time from ``start`` to the first content."""
    first = 0.0
    tail = b""
    async for chunk in chunks:
        *lines, tail = (tail + chunk).split(b"\n")
        for line in lines:
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                event = json.loads(line[6:])
                if not first and event.get("choices") and event["choices"][0]["delta"].get("content"):
                    first = time.perf_counter() - start
    return first


async def raw_stream(client: httpx.AsyncClient, url: str, payload: bytes) -> float:
    """A lean httpx client: raw body bytes, split into lines, each data line JSON-decoded."""
    start = time.perf_counter()
    headers = {
        "content-type": "application/json",
        "accept-encoding": "identity",
        "authorization": "Bearer sk-fake-not-a-secret",
    }
    async with client.stream("POST", url, content=payload, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {(await response.aread())[:200]!r}")
        return await _first_content(response.aiter_raw(), start)


async def core_stream(pool: httpcore.AsyncConnectionPool, url: str, payload: bytes) -> float:
    """The leanest direct client: httpcore's pool and the same line loop."""
    start = time.perf_counter()
    headers = [
        (b"content-type", b"application/json"),
        (b"accept-encoding", b"identity"),
        (b"authorization", b"Bearer sk-fake-not-a-secret"),
    ]
    async with pool.stream("POST", url, headers=headers, content=payload) as response:
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}")
        return await _first_content(response.aiter_stream(), start)


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        children = [c for c, parent in parents.items() if parent == p and c not in tree]
        tree.update(children)
        frontier += children
    return sum(cpu.get(p, 0.0) for p in tree)


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    cpu: float = 0.0  # CPU seconds of the client process, plus the proxy's when there is one


async def closed_loop(
    call: Call, concurrency: int, seconds: float, into: Samples, proxy_pid: int | None = None
) -> None:
    stop_at = time.perf_counter() + seconds
    begin = time.perf_counter()
    cpu0 = time.process_time() + (tree_cpu_seconds(proxy_pid) if proxy_pid else 0.0)

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                ttft = await call()
            except Exception:
                into.errors += 1
                continue
            into.latencies.append(time.perf_counter() - t0)
            into.ttfts.append(ttft)
            into.requests += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    into.seconds += time.perf_counter() - begin
    into.cpu += time.process_time() + (tree_cpu_seconds(proxy_pid) if proxy_pid else 0.0) - cpu0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- the run ----------------------------------------------------------------------------------


async def run(
    args: argparse.Namespace, backend_port: int, litellm_port: int | None, litellm_pid: int | None
) -> list[dict[str, object]]:
    backend_url = f"http://127.0.0.1:{backend_port}/v1"
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    # No timeouts on the raw client: httpx's per-read timeouts cost a cancel scope per read,
    # and the floor should be as lean as a client can be.
    client = httpx.AsyncClient(limits=limits, timeout=None, trust_env=False)
    clients = [client]
    pool = httpcore.AsyncConnectionPool(max_connections=200, max_keepalive_connections=200)
    adapter = OpenAICompatible(backend_url, "bench", name="bench", max_connections=200)
    gw_backend = OpenAICompatible(backend_url, "bench", name="fake", max_connections=200)
    gateway = Gateway(
        StaticRoutes([Route("bench", 1, (Target("fake", 1),))]),
        [Deployment("fake", gw_backend, max_concurrency=256)],
        limits=Limits(max_tokens=64, default_principal_budget=Budget(requests=Rate(1e9), tokens=Rate(1e12))),
        metrics=GatewayMetrics(CollectorRegistry()),
    )
    request = ChatRequest.of(PROMPT, model="bench", max_tokens=64, user="bench")
    payload = body("bench")

    async def direct() -> float:
        return await core_stream(pool, f"{backend_url}/chat/completions", payload)

    async def via_httpx() -> float:
        return await raw_stream(client, f"{backend_url}/chat/completions", payload)

    async def through(model: Callable[[], object]) -> float:
        start = time.perf_counter()
        first = 0.0
        async with model() as s:  # type: ignore[attr-defined]
            async for delta in s:
                if delta.text and not first:
                    first = time.perf_counter() - start
        return first

    async def backend_only() -> float:
        start = time.perf_counter()
        first = 0.0
        async for delta in adapter.stream(request):
            if delta.text and not first:
                first = time.perf_counter() - start
        return first

    async def via_gateway() -> float:
        return await through(lambda: gateway.stream(request))

    modes: dict[str, Call] = {"direct": direct, "httpx": via_httpx, "backend": backend_only, "gateway": via_gateway}
    if litellm_port is not None:
        litellm_url = f"http://127.0.0.1:{litellm_port}/v1/chat/completions"
        # its own pool: httpcore scans every pooled connection to place a request, so idle
        # connections to the proxy would slow the direct client down
        litellm_client = httpx.AsyncClient(limits=limits, timeout=None, trust_env=False)
        clients.append(litellm_client)

        async def via_litellm() -> float:
            return await raw_stream(litellm_client, litellm_url, payload)

        modes["litellm"] = via_litellm

    rows: list[dict[str, object]] = []
    for concurrency in args.concurrency:
        samples = {m: Samples() for m in modes}
        for call in modes.values():  # warm pools, JITs, caches
            await closed_loop(call, concurrency, args.warmup, Samples())
        for _ in range(args.rounds):
            for mode, call in modes.items():
                pid = litellm_pid if mode == "litellm" else None
                await closed_loop(call, concurrency, args.duration / args.rounds, samples[mode], pid)
        base = samples["direct"]
        base_cpu = base.cpu / max(base.requests, 1)
        for mode, s in samples.items():
            row: dict[str, object] = {
                "mode": mode,
                "concurrency": concurrency,
                "requests": s.requests,
                "errors": s.errors,
                "rps": round(s.requests / s.seconds, 1) if s.seconds else 0.0,
                "mean_ms": round(sum(s.latencies) / max(len(s.latencies), 1) * 1e3, 3),
                "p50_ms": round(pct(s.latencies, 0.50) * 1e3, 3),
                "p99_ms": round(pct(s.latencies, 0.99) * 1e3, 3),
                "ttft_p50_ms": round(pct(s.ttfts, 0.50) * 1e3, 3),
                "added_mean_ms": round(
                    (sum(s.latencies) / max(len(s.latencies), 1) - sum(base.latencies) / max(len(base.latencies), 1))
                    * 1e3,
                    3,
                ),
                "added_p50_ms": round((pct(s.latencies, 0.50) - pct(base.latencies, 0.50)) * 1e3, 3),
                "added_p99_ms": round((pct(s.latencies, 0.99) - pct(base.latencies, 0.99)) * 1e3, 3),
                "cpu_us_per_req": round(s.cpu / max(s.requests, 1) * 1e6, 1),
                "added_cpu_us_per_req": round((s.cpu / max(s.requests, 1) - base_cpu) * 1e6, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    for c in clients:
        await c.aclose()
    await pool.aclose()
    await adapter.aclose()
    await gateway.aclose()
    return rows


def table(rows: list[dict[str, object]], litellm_note: str) -> str:
    """A Markdown table (one row per streams x mode) and the figures the issue asks for."""

    def f(row: dict[str, object], key: str) -> float:
        return float(str(row[key]))

    lines = [
        "| streams | mode | mean ms | p50 ms | p99 ms | added mean ms | added p50 ms | added p99 ms | req/s "
        "| added CPU µs/req |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        base = r["mode"] == "direct"
        lines.append(
            f"| {r['concurrency']} | {r['mode']} | {f(r, 'mean_ms'):.2f} | {f(r, 'p50_ms'):.2f} | "
            f"{f(r, 'p99_ms'):.2f} | "
            + (
                "— | — | — | "
                if base
                else f"{f(r, 'added_mean_ms'):+.2f} | {f(r, 'added_p50_ms'):+.2f} | {f(r, 'added_p99_ms'):+.2f} | "
            )
            + f"{f(r, 'rps'):.0f} | "
            + ("— |" if base else f"{f(r, 'added_cpu_us_per_req'):+.0f} |")
        )
    by = {(r["mode"], r["concurrency"]): r for r in rows}
    lines.append("")
    best = {str(r["mode"]): 0.0 for r in rows}
    for r in rows:
        best[str(r["mode"])] = max(best[str(r["mode"])], f(r, "rps"))
    lines.append("max req/s: " + ", ".join(f"{m} {v:.0f}" for m, v in best.items()))
    for c in sorted({int(str(r["concurrency"])) for r in rows}):
        g, h = by[("gateway", c)], by[("httpx", c)]
        lines.append(
            f"{c} streams: against a raw httpx client the gateway adds "
            f"{f(g, 'p50_ms') - f(h, 'p50_ms'):+.2f} ms p50, {f(g, 'p99_ms') - f(h, 'p99_ms'):+.2f} ms p99, "
            f"{f(g, 'cpu_us_per_req') - f(h, 'cpu_us_per_req'):+.0f} µs CPU per request"
        )
    for c in sorted({int(str(r["concurrency"])) for r in rows}):
        g, b = by[("gateway", c)], by[("backend", c)]
        lines.append(
            f"{c} streams: the gateway layer alone (gateway - backend) adds "
            f"{f(g, 'p50_ms') - f(b, 'p50_ms'):+.2f} ms p50, {f(g, 'p99_ms') - f(b, 'p99_ms'):+.2f} ms p99, "
            f"{f(g, 'cpu_us_per_req') - f(b, 'cpu_us_per_req'):+.0f} µs CPU per request"
        )
    for c in sorted({int(str(r["concurrency"])) for r in rows}):
        g, lt = by.get(("gateway", c)), by.get(("litellm", c))
        if g is None or lt is None:
            continue
        # a gateway within noise of direct (<= 0.05 ms, <= 10 µs) is counted at that floor, so
        # the ratio is a lower bound then ("at least")
        g_ms, g_cpu = f(g, "added_p50_ms"), f(g, "added_cpu_us_per_req")
        ratio = f(lt, "added_p50_ms") / max(g_ms, 0.05)
        cpu_ratio = f(lt, "added_cpu_us_per_req") / max(g_cpu, 10.0)
        lines.append(
            f"{c} streams: LiteLLM adds {f(lt, 'added_p50_ms'):.2f} ms p50, the gateway {g_ms:.2f} ms: "
            f"{'at least ' if g_ms <= 0.05 else ''}{ratio:.0f}x; added CPU per request "
            f"{f(lt, 'added_cpu_us_per_req'):.0f} vs {g_cpu:.0f} µs: "
            f"{'at least ' if g_cpu <= 10 else ''}{cpu_ratio:.0f}x"
        )
    lines.append(litellm_note)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="strongroom gateway overhead vs direct vs LiteLLM")
    parser.add_argument("--duration", type=float, default=4.0, help="measured seconds per mode and level")
    parser.add_argument("--rounds", type=int, default=16, help="interleaved rounds the duration is split into")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up per mode and level")
    parser.add_argument("--tokens", type=int, default=16, help="tokens in the fake backend's reply")
    parser.add_argument(
        "--token-delay", type=float, default=0.0,
        help="seconds between the fake backend's tokens (0: as fast as it can, which saturates the "
        "client's event loop so that latency measures CPU queueing; 0.005 is a fast real model's pace)",
    )  # fmt: skip
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--litellm-venv", default=os.environ.get("LITELLM_VENV", "/tmp/litellm-venv"))
    args = parser.parse_args()

    backend, port = start_backend(args.tokens, args.token_delay)
    litellm_proc = None
    litellm_port = None
    venv = Path(args.litellm_venv)
    version = litellm_version(venv)
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    if version is None:
        note = (
            f"litellm not measured: no virtualenv with litellm at {venv} "
            f"(python -m venv {venv} && {venv}/bin/pip install 'litellm[proxy]=={LITELLM_PIN}')"
        )
    elif version in ("1.82.7", "1.82.8"):
        note = f"litellm not measured: {venv} has litellm {version}, a compromised release; reinstall {LITELLM_PIN}"
    else:
        try:
            litellm_proc, litellm_port = start_litellm(venv, port, workdir)
            note = f"litellm {version} proxy measured (1 worker, separate process, {venv})"
        except (RuntimeError, OSError) as exc:
            note = f"litellm not measured: {exc}"
    print(json.dumps({"machine": f"{os.cpu_count()} CPU, {platform.platform()}, Python {platform.python_version()}",
                      "note": note, "tokens_per_reply": args.tokens,
                      "token_delay_s": args.token_delay}), flush=True)  # fmt: skip
    try:
        rows = asyncio.run(run(args, port, litellm_port, litellm_proc.pid if litellm_proc else None))
    finally:
        backend.terminate()
        if litellm_proc is not None:
            litellm_proc.terminate()
            try:
                litellm_proc.wait(10)
            except subprocess.TimeoutExpired:
                litellm_proc.kill()
        backend.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(rows, note))


if __name__ == "__main__":
    main()
