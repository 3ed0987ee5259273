"""The ``strongroom`` command: a thin shell over the application layer (:mod:`strongroom.service`).

Each module here parses options, calls the library, prints and sets the exit status; the
work itself lives below (see docs/architecture.md). :mod:`.main` assembles the commands.
"""

from strongroom.cli.main import app, main

__all__ = ["app", "main"]
