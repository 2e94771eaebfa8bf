"""The aiohttp application factory.

``create_app`` wires settings, the database pool (migrated at start), the arq queue and the
media provider into typed application keys; routes read them from there.  Nothing is global.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from arq import create_pool as create_arq_pool
from arq.connections import RedisSettings

from sidecar.config import Settings
from sidecar.db import open_database
from sidecar.db.roles import ensure_chat_role
from sidecar.jobs.names import WORK_QUEUE
from sidecar.providers import make_provider
from sidecar.routes import ROUTE_MODULES
from sidecar.services import Endpoints
from sidecar.web import metrics
from sidecar.web.auth import api_token_middleware, warn_if_exposed
from sidecar.web.errors import error_middleware
from sidecar.web.keys import DB, ENDPOINTS, PROVIDER, QUEUE, SETTINGS
from sidecar.web.pages import setup_pages

log = logging.getLogger(__name__)


def create_app(settings: Settings, endpoints: Endpoints) -> web.Application:
    app = web.Application(
        middlewares=[
            metrics.web_middleware(),
            error_middleware,
            metrics.public_metrics(api_token_middleware(settings.api_token), settings),
        ],
        client_max_size=4 * 1024 * 1024,
    )
    app[SETTINGS] = settings
    app[ENDPOINTS] = endpoints
    app.cleanup_ctx.append(_resources)
    setup_pages(app)
    warn_if_exposed(settings)
    for module in ROUTE_MODULES:
        app.add_routes(module.routes)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings, endpoints = app[SETTINGS], app[ENDPOINTS]
    pool, applied = await open_database(
        endpoints.postgres_dsn, min_size=settings.db_pool_min_size, max_size=settings.db_pool_max_size
    )
    if applied:
        log.info("schema migrations applied: %s", applied)
    try:
        async with pool.acquire() as conn:
            await ensure_chat_role(conn, settings.ai_chat_db_user_name, settings.ai_chat_db_user_password)
        app[DB] = pool
        app[QUEUE] = await create_arq_pool(
            RedisSettings.from_dsn(endpoints.redis_url), default_queue_name=WORK_QUEUE
        )
        app[PROVIDER] = make_provider(settings)
        yield
    finally:
        if PROVIDER in app:
            await app[PROVIDER].close()
        if QUEUE in app:
            await app[QUEUE].aclose()
        await pool.close()
