"""Deployment configuration in ``HOME/models/deployments.json``, and building a gateway from it.

    {"format": 1, "deployments": {
        "vllm-a": {"backend": "openai-compatible", "url": "http://gpu1:8000/v1",
                   "model": "meta-llama/Llama-3.1-8B-Instruct", "api_key_env": "VLLM_A_KEY",
                   "max_concurrency": 32, "clearance": "restricted", "mnpi": true},
        "openai": {"backend": "openai-compatible", "url": "https://api.openai.com/v1",
                   "model": "gpt-4o-mini", "api_key_env": "OPENAI_API_KEY"},
        "local-smol": {"backend": "local", "path": "/models/smollm2-135m-instruct"}}}

``backend`` names one of a closed set; the file never holds an import path, and never a
secret: ``api_key_env`` names the environment variable that holds the key. In-process
models (the RAG layer's extractive generator) are registered in code, not here.

``clearance`` (``public`` unless set: deny by default, so the external ``openai`` above sees
only public context) is the highest sensitivity level of retrieved context or tool results
the gateway may send the deployment; ``mnpi`` (false unless set) whether it may see MNPI.

``HOME/models/retired.json`` names the deployments whose model the model registry retired
(written by an approved registry stage move, :mod:`strongroom.service.registry`); a gateway
built here leaves them out, so a route fails over past them and never sends them a request.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from strongroom.errors import ConfigError
from strongroom.llm.breaker import BreakerPolicy
from strongroom.llm.gateway import Deployment, Gateway
from strongroom.llm.limits import BucketStore, Limits
from strongroom.llm.metrics import GatewayMetrics
from strongroom.llm.openai_compat import OpenAICompatible, Timeouts
from strongroom.llm.protocol import ChatModel
from strongroom.llm.route_config import NAME_PATTERN, RouteStore, first_error
from strongroom.llm.types import Sensitivity

__all__ = [
    "BUILT_IN",
    "DeploymentSpec",
    "build_deployment",
    "deployment_spec",
    "load_deployments",
    "load_retired",
    "open_gateway",
    "save_deployment",
    "save_retired",
    "unconfigured",
]

log = logging.getLogger(__name__)

BACKENDS = ("openai-compatible", "local")
#: deployments registered in code rather than in deployments.json
BUILT_IN = ("extractive",)


class DeploymentSpec(BaseModel):
    """One deployment as configured (validated: the file is edited by people)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["openai-compatible", "local"]
    url: str | None = None
    model: str | None = None
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    path: str | None = None
    max_new_tokens: int = Field(default=256, ge=1)
    max_concurrency: int | None = Field(default=None, ge=1)
    queue_timeout_s: float = Field(default=0.0, ge=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    first_token_timeout_s: float = Field(default=30.0, gt=0)
    idle_timeout_s: float = Field(default=60.0, gt=0)
    total_timeout_s: float = Field(default=600.0, gt=0)
    stream_usage: bool = True
    failure_threshold: int = Field(default=5, ge=1)
    cooldown_s: float = Field(default=30.0, ge=0)
    clearance: Sensitivity = "public"
    mnpi: bool = False

    @model_validator(mode="after")
    def _complete(self) -> DeploymentSpec:
        if self.backend == "openai-compatible":
            if not (self.url and self.model):
                raise ValueError("an openai-compatible deployment needs url and model")
            if not self.url.startswith(("http://", "https://")):
                raise ValueError("url must start with http:// or https://")
        if self.backend == "local" and not self.path:
            raise ValueError("a local deployment needs path (a transformers model directory)")
        return self


class DeploymentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal[1] = 1
    deployments: dict[str, DeploymentSpec] = Field(default_factory=dict)


def _path(home: str | Path) -> Path:
    return Path(home) / "models" / "deployments.json"


def load_deployments(home: str | Path) -> dict[str, DeploymentSpec]:
    """The configured deployments by name ({} when none are configured)."""
    path = _path(home)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        return dict(DeploymentsFile.model_validate_json(raw).deployments)
    except ValidationError as exc:
        raise ConfigError(
            f"{path} is not a valid deployments file: {first_error(exc)}; fix it or set the deployment again"
        ) from exc


def deployment_spec(name: str, fields: Mapping[str, object]) -> DeploymentSpec:
    """Deployment ``name`` as given (``backend``, ``url``, ``model`` ...); a bad one is a ConfigError."""
    try:
        return DeploymentSpec.model_validate(fields)
    except ValidationError as exc:
        raise ConfigError(f"invalid deployment {name!r}: {exc}") from exc


def unconfigured(home: str | Path, names: Iterable[str]) -> list[str]:
    """Those of ``names`` that neither ``deployments.json`` nor code (:data:`BUILT_IN`) configures."""
    known = set(load_deployments(home)) | set(BUILT_IN)
    return [n for n in names if n not in known]


def save_deployment(home: str | Path, name: str, spec: DeploymentSpec) -> None:
    """Add or replace deployment ``name`` (written atomically)."""
    if not re.match(NAME_PATTERN, name):
        raise ConfigError(f"invalid deployment name {name!r}: it must match {NAME_PATTERN}")
    path = _path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = DeploymentsFile(deployments={**load_deployments(home), name: spec})
    fd, tmp = tempfile.mkstemp(prefix=".deployments.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data.model_dump(mode="json", exclude_defaults=True), fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _retired_path(home: str | Path) -> Path:
    return Path(home) / "models" / "retired.json"


def load_retired(home: str | Path) -> frozenset[str]:
    """The deployments the model registry retired (none when the file is absent)."""
    path = _retired_path(home)
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return frozenset()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not readable JSON ({exc}); move a registry stage to rewrite it") from exc
    names = data.get("deployments") if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{path} holds no list of deployments; move a stage in the model registry to rewrite it")
    return frozenset(names)


def save_retired(home: str | Path, names: Iterable[str]) -> None:
    """Name the deployments the gateway must leave out (written atomically)."""
    path = _retired_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".retired.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump({"format": 1, "deployments": sorted(set(names))}, fh, indent=2)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_deployment(name: str, spec: DeploymentSpec, *, env: Mapping[str, str] | None = None) -> Deployment:
    """The gateway :class:`Deployment` for ``spec``; the API key is read from ``env`` now."""
    env = os.environ if env is None else env
    model: ChatModel
    if spec.backend == "openai-compatible":
        key = None
        if spec.api_key_env:
            key = env.get(spec.api_key_env)
            if not key:
                raise ConfigError(
                    f"deployment {name!r} reads its API key from ${spec.api_key_env}, which is not set; "
                    "export it before starting strongroom"
                )
        timeouts = Timeouts(spec.connect_timeout_s, spec.first_token_timeout_s, spec.idle_timeout_s,
                            spec.total_timeout_s)  # fmt: skip
        assert spec.url is not None and spec.model is not None  # checked by the validator
        model = OpenAICompatible(spec.url, spec.model, api_key=key, name=name, timeouts=timeouts,
                                 stream_usage=spec.stream_usage)  # fmt: skip
    else:
        from strongroom.llm.local import LocalModel

        assert spec.path is not None
        model = LocalModel(spec.path, name=name, max_new_tokens=spec.max_new_tokens)
    return Deployment(
        name,
        model,
        max_concurrency=spec.max_concurrency,
        queue_timeout_s=spec.queue_timeout_s,
        breaker=BreakerPolicy(spec.failure_threshold, spec.cooldown_s),
        clearance=spec.clearance,
        mnpi=spec.mnpi,
    )


def open_gateway(
    home: str | Path,
    *,
    extra: Iterable[Deployment] = (),
    limits: Limits = Limits(),  # noqa: B008 - frozen value
    buckets: BucketStore | None = None,
    metrics: GatewayMetrics | None = None,
    env: Mapping[str, str] | None = None,
) -> Gateway:
    """A gateway over the routes and deployments configured under ``home``, plus ``extra``
    in-process deployments (e.g. ``Deployment("extractive", FunctionModel(...))``). Deployments
    the model registry retired (:func:`load_retired`) are left out: routes fail over past them."""
    retired = load_retired(home)
    configured = sorted(load_deployments(home).items())
    for name in sorted(retired & {n for n, _ in configured}):
        log.warning("deployment %s is left out: its model is retired in the model registry", name)
    deployments = [build_deployment(n, s, env=env) for n, s in configured if n not in retired]
    return Gateway(RouteStore(home), [*deployments, *extra], limits=limits, buckets=buckets, metrics=metrics)
