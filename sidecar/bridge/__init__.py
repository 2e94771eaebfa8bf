"""Protocol bridges (the code of plugin-bridge/): reverse proxies that answer the mix routes of
Jellyfin and Subsonic clients with sonic mixes and pass everything else to the media server.

Each bridge module exposes ``create_app(main: web.Application) -> web.Application``; the bridge
app reads the shared resources (settings, database pool, ...) from the main app's keys
(sidecar.web.keys) at request time, so it runs on its own port beside the main app, in the
same process and event loop.  ``serve_web`` starts the bridges whose port is configured.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from sidecar.config import Settings

BridgeFactory = Callable[[web.Application], web.Application]


def configured_bridges(settings: Settings) -> list[tuple[str, int, BridgeFactory]]:
    """(name, port, factory) of every bridge whose port is set."""
    out: list[tuple[str, int, BridgeFactory]] = []
    if settings.jellyfin_bridge_port is not None:
        from sidecar.bridge import jellyfin

        out.append(("Jellyfin bridge", settings.jellyfin_bridge_port, jellyfin.create_app))
    if settings.subsonic_bridge_port is not None:
        from sidecar.bridge import subsonic

        out.append(("Subsonic bridge", settings.subsonic_bridge_port, subsonic.create_app))
    return out
