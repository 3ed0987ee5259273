"""Ingestion jobs on a Redis Stream with one consumer group of workers.

- ``publish``: ``XADD`` to the stream (``job`` field holds the job's JSON).
- ``receive``: first ``XAUTOCLAIM`` an entry some worker has held for ``reclaim_idle_s``
  without acknowledging it (the worker died, or the job failed and waits for its retry),
  else ``XREADGROUP >`` a new one. Redis counts deliveries per entry: that count is the
  attempt number, so an entry that kills every worker that takes it still reaches
  ``max_attempts`` and goes to the dead letters instead of looping forever.
- ``settle``: done is ``XACK`` after the version is stored; dead is ``XADD`` to
  ``<stream>:dead`` with the error, then ``XACK``, in one transaction; retry leaves the
  entry pending (it is claimed again after ``reclaim_idle_s``) and records its error.

The last error of a job that waits for its retry is kept in the hash ``<stream>:errors``,
so its next delivery and its dead letter say why it failed and not only that it failed.
"""

from __future__ import annotations

from typing import Any

from strongroom.bus.base import Backlog, DeadLetter, Delivery, Outcome, display_url, parse_job
from strongroom.bus.job import IngestJob
from strongroom.errors import BusUnavailable, ConfigError
from strongroom.types import frozen_meta

__all__ = ["BusUnavailable", "RedisStreamsBus"]


class RedisStreamsBus:
    """The :class:`strongroom.bus.Bus` protocol on a Redis Stream (see the module's notes)."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        stream: str = "strongroom:ingest",
        group: str = "workers",
        reclaim_idle_s: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError("the Redis bus needs the 'redis' package: pip install 'redis>=5'") from exc
        if max_attempts < 1 or reclaim_idle_s <= 0:
            raise ConfigError("the bus needs max_attempts >= 1 and reclaim_idle_s > 0")
        self.stream = stream
        self.dead = f"{stream}:dead"
        self.errors = f"{stream}:errors"
        self.group = group
        self.reclaim_idle_s = float(reclaim_idle_s)
        self.reclaim_idle_ms = int(reclaim_idle_s * 1000)
        self.max_attempts = int(max_attempts)
        self._where = display_url(url)  # never a password, in the userinfo or the query
        self._errors: tuple[type[Exception], ...] = (redis.RedisError, OSError)
        self._redis: Any = redis.Redis.from_url(url, decode_responses=True, socket_timeout=30)
        self._call(self._ensure_group)

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self._errors as exc:
            raise BusUnavailable(
                f"cannot reach the Redis bus at {self._where} ({type(exc).__name__}: {exc}); check that Redis is up"
            ) from exc

    def _ensure_group(self) -> None:
        import redis

        try:
            self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists already: fine
                raise

    # -- the Bus protocol -------------------------------------------------------------------

    def publish(self, job: IngestJob) -> str:
        return self.publish_raw(job.to_json())

    def publish_raw(self, text: str) -> str:
        """Queue a message as it is, job or not (tools and tests use it for poison)."""
        return str(self._call(self._redis.xadd, self.stream, {"job": text}))

    def receive(self, consumer: str, block_s: float) -> Delivery | None:
        return self._call(self._receive, consumer, block_s)  # type: ignore[no-any-return]

    def _receive(self, consumer: str, block_s: float) -> Delivery | None:
        _, claimed, *_ = self._redis.xautoclaim(
            self.stream, self.group, consumer, self.reclaim_idle_ms, start_id="0-0", count=1
        )
        if claimed:
            message_id, fields = claimed[0]
            pending = self._redis.xpending_range(self.stream, self.group, message_id, message_id, 1)
            attempt = int(pending[0]["times_delivered"]) if pending else 1
            return self._delivery(message_id, fields, attempt, self._redis.hget(self.errors, message_id), consumer)
        got = self._redis.xreadgroup(
            self.group, consumer, {self.stream: ">"}, count=1, block=max(1, int(block_s * 1000))
        )
        if not got:
            return None
        message_id, fields = got[0][1][0]
        return self._delivery(message_id, fields, 1, None, consumer)

    @staticmethod
    def _delivery(
        message_id: str, fields: dict[str, str] | None, attempt: int, error: str | None, consumer: str
    ) -> Delivery:
        raw = (fields or {}).get("job", "")
        return Delivery(message_id, parse_job(raw), attempt, raw, error, consumer)

    def settle(self, delivery: Delivery, outcome: Outcome) -> None:
        if outcome.kind == "hold":  # claimed again by its holder: its idle time starts over, no delivery counted
            self._call(
                self._redis.xclaim,
                self.stream,
                self.group,
                delivery.consumer,
                0,
                [delivery.message_id],
                None,
                None,
                None,
                False,
                True,
            )
            return
        if outcome.kind == "retry":
            self._call(self._redis.hset, self.errors, delivery.message_id, outcome.error)
            return

        def run() -> None:
            with self._redis.pipeline(transaction=True) as tx:
                if outcome.kind == "dead":
                    tx.xadd(
                        self.dead,
                        {
                            "job": delivery.raw,
                            "message_id": delivery.message_id,
                            "attempts": str(delivery.attempt),
                            "error": outcome.error,
                        },
                    )
                tx.xack(self.stream, self.group, delivery.message_id)
                tx.hdel(self.errors, delivery.message_id)
                tx.execute()

        self._call(run)

    def backlog(self) -> Backlog:
        return self._call(self._backlog)  # type: ignore[no-any-return]

    def _backlog(self) -> Backlog:
        outstanding = 0
        for group in self._redis.xinfo_groups(self.stream):
            if group["name"] == self.group:
                outstanding = int(group["pending"]) + int(group["lag"] or 0)
        dead = tuple(
            DeadLetter(
                fields.get("message_id", entry_id),
                fields.get("job", ""),
                _int(fields.get("attempts")),
                fields.get("error", ""),
            )
            for entry_id, fields in self._redis.xrange(self.dead)
        )
        return Backlog(outstanding, dead, frozen_meta(self._redis.hgetall(self.errors)))

    def close(self) -> None:
        self._redis.close()

    # -- Redis only ---------------------------------------------------------------------------

    def pending(self) -> list[dict[str, Any]]:
        """Entries delivered and not yet acknowledged: id, consumer, idle ms, deliveries."""
        return list(self._call(self._redis.xpending_range, self.stream, self.group, "-", "+", 1000))


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
