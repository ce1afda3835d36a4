"""The field desk as an `ApiPlugin` for `dispatch.app.init_app`: its routes and OpenAPI entries, the desk
on the app, and its timers while the app runs."""

from __future__ import annotations

from aiohttp import web

from dispatch.field.api import FIELD_KEY, api
from dispatch.field.desk import FieldDesk
from dispatch.openapi import RoutesPlugin


class FieldPlugin(RoutesPlugin):
    """Mount with `init_app(ctx, plugins=[FieldPlugin(desk)])`."""

    def __init__(self, desk: FieldDesk) -> None:
        super().__init__(api)
        self.desk = desk

    def setup(self, app: web.Application) -> None:
        """Put the desk on the app."""
        app[FIELD_KEY] = self.desk
