"""Versioned route configuration in ``HOME/models/routes.json``: every version is kept.

    {"format": 1, "routes": {"chat": {
        "active": 2,
        "versions": [{"version": 1, "targets": [{"deployment": "vllm-a", "weight": 100}], ...},
                     {"version": 2, "targets": [...90/10 split...], ...}],
        "history":  [{"version": 1, "action": "set-route", "at": ...},
                     {"version": 2, "action": "set-route", "at": ...}]}}}

``set_route`` appends a version and activates it; ``rollback`` re-activates the version
that was active before the current one (or a named one) without touching the versions, so
it is instant and a second rollback undoes the first. Versions and history are append-only.
The file is validated with pydantic when read (it is a trust boundary: people edit it) and
written atomically under a lock, so concurrent CLI calls never lose a version.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from strongroom.errors import ConfigError
from strongroom.llm.routing import Route, Target

__all__ = ["RouteStore", "parse_target"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$"
_NAME = re.compile(NAME_PATTERN)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetModel(_Strict):
    deployment: str = Field(pattern=NAME_PATTERN)
    weight: float = Field(default=0.0, ge=0)


class VersionModel(_Strict):
    version: int = Field(ge=1)
    targets: list[TargetModel] = Field(min_length=1)
    created_at: datetime
    note: str = ""

    @model_validator(mode="after")
    def _distinct(self) -> VersionModel:
        names = [t.deployment for t in self.targets]
        if len(set(names)) != len(names):
            raise ValueError("a deployment appears twice in one version")
        return self


class Activation(_Strict):
    version: int = Field(ge=1)
    action: Literal["set-route", "rollback"]
    at: datetime


class RouteModel(_Strict):
    active: int
    versions: list[VersionModel] = Field(min_length=1)
    history: list[Activation] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> RouteModel:
        numbers = [v.version for v in self.versions]
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"versions must be numbered 1..n in order, got {numbers}")
        if not 1 <= self.active <= len(numbers):
            raise ValueError(f"active version {self.active} does not exist")
        return self


class RoutesFile(_Strict):
    format: Literal[1] = 1
    routes: dict[str, RouteModel] = Field(default_factory=dict)


def parse_target(spec: str) -> Target:
    """``"vllm-a:90"`` -> Target("vllm-a", 90.0); ``"extractive"`` -> weight 0 (fallback only).

    The weight follows the last colon; names may contain colons only when a weight is given.
    """
    name, sep, weight = spec.rpartition(":")
    if sep:
        try:
            return Target(name, float(weight))
        except ValueError:
            pass
    return Target(spec, 0.0)


def first_error(exc: ValidationError) -> str:
    """The first problem pydantic found, as ``where: what`` (e.g. ``weight: ... >= 0``)."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "file"
    return f"{where}: {first['msg']}"


def _route(name: str, v: VersionModel) -> Route:
    return Route(name, v.version, tuple(Target(t.deployment, t.weight) for t in v.targets), v.note)


class RouteStore:
    """Routes kept as versioned JSON under ``home``; a :class:`RouteSource` for the gateway.

        store = RouteStore(Path("~/.strongroom").expanduser())
        store.set_route("chat", [Target("vllm-a", 90), Target("vllm-b", 10), Target("extractive")])
        store.get("chat").version   # 1 (or the next number)
        store.rollback("chat")      # the version active before, at once

    ``get`` re-reads the file only when it changed, so a rollback from the CLI reaches a
    running gateway on its next call.
    """

    def __init__(self, home: str | Path) -> None:
        self.path = Path(home) / "models" / "routes.json"
        self._stamp: tuple[int, int, int] | None = None
        self._active: dict[str, Route] = {}

    # -- reading --------------------------------------------------------------------------

    def _read(self) -> RoutesFile:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return RoutesFile()
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc}; check its permissions") from exc
        try:
            return RoutesFile.model_validate_json(raw)
        except ValidationError as exc:
            raise ConfigError(
                f"{self.path} is not a valid routes file: {first_error(exc)}; fix it by hand or restore a backup"
            ) from exc

    def _refresh(self) -> None:
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        if stamp != self._stamp:
            data = self._read()
            self._active = {n: _route(n, r.versions[r.active - 1]) for n, r in data.routes.items()}
            self._stamp = stamp

    def get(self, name: str) -> Route | None:
        self._refresh()
        return self._active.get(name)

    def names(self) -> list[str]:
        self._refresh()
        return sorted(self._active)

    def routes(self) -> list[Route]:
        """The active version of every route, by name."""
        self._refresh()
        return [self._active[n] for n in sorted(self._active)]

    def versions(self, name: str) -> list[Route]:
        """Every version of route ``name``, oldest first."""
        return [_route(name, v) for v in self._require(self._read(), name).versions]

    def history(self, name: str) -> list[Activation]:
        """Every activation of route ``name`` (set-route and rollback), oldest first."""
        return list(self._require(self._read(), name).history)

    @staticmethod
    def _require(data: RoutesFile, name: str) -> RouteModel:
        route = data.routes.get(name)
        if route is None:
            known = ", ".join(sorted(data.routes)) or "none"
            raise ConfigError(f"no route named {name!r} (known: {known}); create it with set-route")
        return route

    # -- writing --------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[RoutesFile]:
        """Hold the write lock; yields the current file (re-read under the lock)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self._read()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, data: RoutesFile) -> None:
        text = json.dumps(data.model_dump(mode="json"), indent=2, sort_keys=False) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".routes.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._stamp = None

    def set_route(self, name: str, targets: Sequence[Target], *, note: str = "") -> Route:
        """Append a new version of route ``name`` (created if new) and make it active."""
        now = datetime.now(UTC)
        try:
            if not _NAME.match(name):
                raise ValueError(f"a route name must match {NAME_PATTERN}")
            Route(name, 1, tuple(targets))  # the rules the gateway applies at run time
            version_targets = [TargetModel(deployment=t.deployment, weight=t.weight) for t in targets]
        except ValidationError as exc:
            raise ConfigError(f"invalid route {name!r}: {first_error(exc)}") from exc
        except ValueError as exc:
            raise ConfigError(f"invalid route {name!r}: {exc}") from exc
        with self._locked() as data:
            old = data.routes.get(name)
            number = len(old.versions) + 1 if old else 1
            version = VersionModel(version=number, targets=version_targets, created_at=now, note=note)
            activation = Activation(version=number, action="set-route", at=now)
            route = RouteModel(
                active=number,
                versions=[*(old.versions if old else []), version],
                history=[*(old.history if old else []), activation],
            )
            self._write(RoutesFile(routes={**data.routes, name: route}))
        return _route(name, version)

    def rollback(self, name: str, *, to: int | None = None) -> Route:
        """Re-activate version ``to``, or else the version active before the current one."""
        with self._locked() as data:
            old = self._require(data, name)
            if to is None:
                if len(old.history) < 2:
                    raise ConfigError(f"route {name!r} has only ever had one version active; nothing to roll back to")
                to = old.history[-2].version
            if not 1 <= to <= len(old.versions):
                raise ConfigError(f"route {name!r} has versions 1..{len(old.versions)}; there is no version {to}")
            activation = Activation(version=to, action="rollback", at=datetime.now(UTC))
            route = RouteModel(active=to, versions=old.versions, history=[*old.history, activation])
            self._write(RoutesFile(routes={**data.routes, name: route}))
        return _route(name, old.versions[to - 1])
