"""The HTTP service: ``create_app(settings)`` and the CLI pieces (serve, keys, audit)."""

from strongroom.api.app import create_app

__all__ = ["create_app"]
