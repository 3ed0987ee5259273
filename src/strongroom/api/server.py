"""Running the HTTP service in this process (``strongroom serve``): JSON-lines logs on stderr,
uvicorn without its own logging or access log, and a grace period for in-flight requests.

    >>> serve(Settings(home=Path("/srv/strongroom")), ServiceSettings(), host="0.0.0.0", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import sys

from strongroom.api.app import create_app
from strongroom.api.middleware import JsonFormatter
from strongroom.auth import ServiceSettings
from strongroom.config import Settings

__all__ = ["configure_logging", "serve"]


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the service's loggers (and uvicorn's errors)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("strongroom", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def serve(settings: Settings, service: ServiceSettings, *, host: str, port: int, log_level: str = "info") -> None:
    """Serve until SIGTERM or SIGINT; then in-flight requests get ``service.shutdown_grace_s``."""
    import uvicorn

    configure_logging(log_level.upper())
    if not service.oidc_issuer and not service.dev_mode:
        logging.getLogger("strongroom.api").warning(
            "no OIDC issuer configured (STRONGROOM_OIDC_ISSUER): only API keys are accepted"
        )
    uvicorn.run(
        create_app(settings, service),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=math.ceil(service.shutdown_grace_s),
    )
