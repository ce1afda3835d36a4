"""The field routes' one `DocumentedRoutes` (each route module registers on it) and the app key of the
desk they call: a leaf, so the route modules and the plugin import it without importing each other."""

from __future__ import annotations

from aiohttp import web

from dispatch.field.desk import FieldDesk
from dispatch.openapi import DocumentedRoutes

api = DocumentedRoutes("field")
FIELD_KEY = web.AppKey("outpost.field", FieldDesk)
