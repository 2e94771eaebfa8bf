"""HTTP handlers, one module per area; each exposes ``routes`` (a RouteTableDef)."""

from sidecar.routes import (
    analysis,
    apidocs,
    backup,
    chat,
    clustering,
    compat,
    config,
    health,
    library,
    map,
    metrics,
    pages,
    playlists,
    similarity,
    tasks,
)

ROUTE_MODULES = (
    health,
    config,
    tasks,
    library,
    analysis,
    similarity,
    clustering,
    compat,
    chat,
    pages,
    apidocs,
    backup,
    playlists,
    map,
    metrics,
)
