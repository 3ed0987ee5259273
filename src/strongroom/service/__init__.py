"""The application layer: the one place policy is enforced, for every entry point.

The CLI, the HTTP API, the web UI and Python programs all run strongroom's operations
through this package, with a :class:`~strongroom.types.Principal`: it parses and clamps
time (two clocks, no look-ahead), builds the scope, checks read and write entitlements and
roles, picks the generator (extractive, or a model-gateway route the principal is granted),
redacts queries, and writes the audit record. Nothing else reaches the store for content.

    platform = Platform.open(Settings(home=Path("/srv/strongroom")))
    ana = platform.principal("ana", ["public", "research"])
    platform.ask(ana, AskRequest(question="What were Apple's total net sales?", as_of="2023-06-30"))
"""

from strongroom.service.clock import Clocks, parse_instant
from strongroom.service.platform import EXTRACTIVE_MODEL, Platform, route_allowed
from strongroom.service.requests import (
    AclChange,
    AskRequest,
    DocumentsRequest,
    DocumentView,
    IngestRequest,
    KeyCreated,
    PageView,
    RouteView,
    SearchRequest,
    SearchResult,
    View,
)

__all__ = [
    "EXTRACTIVE_MODEL",
    "AclChange",
    "AskRequest",
    "Clocks",
    "DocumentView",
    "DocumentsRequest",
    "IngestRequest",
    "KeyCreated",
    "PageView",
    "Platform",
    "RouteView",
    "SearchRequest",
    "SearchResult",
    "View",
    "parse_instant",
    "route_allowed",
]
