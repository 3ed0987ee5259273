"""Deployments from configuration: a closed set of backends, keys from the environment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from strongroom.errors import ConfigError
from strongroom.llm.deployments import DeploymentSpec, build_deployment, open_gateway, save_deployment
from strongroom.llm.openai_compat import OpenAICompatible
from strongroom.llm.route_config import RouteStore
from strongroom.llm.routing import Target
from strongroom.testing.openai_server import FakeOpenAIServer
from tests.llm.helpers import ask, function


def test_the_key_is_read_from_the_environment_at_build_time() -> None:
    spec = DeploymentSpec(backend="openai-compatible", url="http://h:1/v1", model="m", api_key_env="K")
    with pytest.raises(ConfigError, match=r"\$K, which is not set"):
        build_deployment("a", spec, env={})
    deployment = build_deployment("a", spec, env={"K": "sk-123"})
    assert isinstance(deployment.model, OpenAICompatible) and "sk-123" not in repr(deployment.model)


def test_specs_are_validated() -> None:
    with pytest.raises(ValueError, match="needs url and model"):
        DeploymentSpec(backend="openai-compatible", url="http://h/v1")
    with pytest.raises(ValueError, match="http"):
        DeploymentSpec(backend="openai-compatible", url="ftp://h/v1", model="m")
    with pytest.raises(ValueError, match="needs path"):
        DeploymentSpec(backend="local")
    with pytest.raises(ValueError):
        DeploymentSpec.model_validate({"backend": "python-import", "path": "os.system"})


@pytest.mark.integration
def test_open_gateway_serves_configured_routes(tmp_path: Path, server: FakeOpenAIServer) -> None:
    save_deployment(tmp_path, "vllm-a", DeploymentSpec(backend="openai-compatible", url=server.url, model="m"))
    RouteStore(tmp_path).set_route("chat", [Target("vllm-a", 1), Target("extractive")])

    async def main() -> tuple[str, str]:
        gw = open_gateway(tmp_path, extra=[function("extractive", "fallback")], env={})
        try:
            result = await gw.chat(ask())
        finally:
            await gw.aclose()
        return result.deployment, result.text

    assert asyncio.run(main()) == ("vllm-a", "The bank's capital ratio is 14%.")
    assert server.requests[0]["model"] == "m"
