"""``python -m strongroom.cli``: the same as the ``strongroom`` command."""

from strongroom.cli.main import main

main()
