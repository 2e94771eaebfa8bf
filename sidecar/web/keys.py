"""Typed keys of the aiohttp application's shared resources (set up by sidecar.app)."""

from __future__ import annotations

import asyncpg
from aiohttp import web
from arq import ArqRedis

from sidecar.config import Settings
from sidecar.providers import MediaProvider
from sidecar.services import Endpoints

SETTINGS = web.AppKey("settings", Settings)
ENDPOINTS = web.AppKey("endpoints", Endpoints)
DB = web.AppKey("db", asyncpg.Pool)
QUEUE = web.AppKey("queue", ArqRedis)
PROVIDER = web.AppKey("provider", MediaProvider)
