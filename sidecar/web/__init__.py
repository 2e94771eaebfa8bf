"""Web plumbing shared by the routes and the bridges: the application's typed keys
(``keys``), the one error shape and its middleware (``errors``), the API token (``auth``).
The composition root (``sidecar/app.py``) and start-up (``sidecar/cli.py``) stay outside."""
