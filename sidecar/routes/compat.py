"""AudioMuse-AI calls that have no counterpart here yet answer a clear 501 JSON error, never a
404 that a plugin would read as "wrong server".  None is left today (clustering moved to
``routes/clustering.py``)."""

from __future__ import annotations

from aiohttp import web

routes = web.RouteTableDef()
