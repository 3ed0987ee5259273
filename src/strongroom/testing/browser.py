"""How the browser tests and the browser benchmark launch Debian's chromium: headless, no
sandbox (they run as root), and none of the background traffic a closed network refuses.

    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
"""

from __future__ import annotations

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "LOCAL_HOSTS"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: the hosts a page may reach: anything else is a request that left the machine
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
