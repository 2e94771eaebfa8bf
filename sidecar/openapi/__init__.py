"""The OpenAPI document of the web app: entries (``operations``), what handlers read
(``introspect``), the document built from the router (``document``)."""

from sidecar.openapi.document import app_routes, build_document

__all__ = ["app_routes", "build_document"]
