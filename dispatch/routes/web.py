"""The live map's server side: `/` redirects to `/map`, the page and its static files, and its settings.

The page and its files hold no data and are public (a browser must load the sign-in form before it has a
token); everything the page shows comes from the same token-protected API every client uses. The page keeps
the token in `sessionStorage` and sends it as `Authorization: Bearer` on every call, the live stream too (a
fetch-based reader, not `EventSource`, which cannot send headers): no cookie, so no CSRF to defend against,
and the token never appears in a URL. A strict Content-Security-Policy allows only this origin's scripts
(and the tile server's images when `OUTPOST_MAP_TILES` names one).

The page's `layers/` modules each own one toggled layer (units, incidents, grids, heat maps, a unit's track,
fleet playback), read from the API; `BaseLayer` entries in the map's config name the shipped GeoJSON drawn
under them (the shipped districts give way to the station's own police grids once they are imported).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from dispatch.auth import principal
from dispatch.keys import SETTINGS_KEY
from dispatch.openapi import DocumentedRoutes, parameter
from dispatch.problems import NotFound
from dispatch.routes.params import encode

api = DocumentedRoutes("map")

STATIC_DIR = (Path(__file__).parent.parent / "static").resolve()
STATIC_PREFIX = "/map/static/"
# What the auth middleware lets through without a token: the page and its files only.
PUBLIC_PATHS = ("/", "/map")
PUBLIC_PREFIXES = (STATIC_PREFIX,)
# Vendored libraries are versioned by their folder name: cache them; the page's own files may change.
_VENDOR = "vendor/"
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("application/geo+json", ".geojson")


class Tiles(msgspec.Struct):
    """A tile server: URL template ({z}, {x}, {y}) and the attribution its licence asks for."""

    url: str
    attribution: str


class BaseLayer(msgspec.Struct):
    """Shipped GeoJSON the map draws under the units when there are no tiles (or over them)."""

    name: str
    url: str
    attribution: str


class MapConfig(msgspec.Struct):
    """What the page needs to draw: the base layer, how old a fix may be before it shows as stale, and who
    is signed in (the page offers a dispatcher's actions only to a dispatcher or admin; the API decides)."""

    role: str
    token_name: str
    tiles: Tiles | None
    base_layers: list[BaseLayer]
    stale_after_s: float
    center: tuple[float, float]  # lon, lat
    zoom: int


SHIPPED_LAYERS = [
    BaseLayer(
        name="Police districts",
        url=STATIC_PREFIX + "data/sf_police_districts.geojson",
        attribution="SFPD districts: DataSF",
    ),
    BaseLayer(
        name="Roads",
        url=STATIC_PREFIX + "data/sf_north_roads.geojson",
        attribution="Roads © OpenStreetMap contributors (ODbL)",
    ),
]


def tiles_of(setting: str) -> Tiles | None:
    """The parsed `OUTPOST_MAP_TILES` (validated by its declaration), or None when empty."""
    if not setting:
        return None
    url, _, attribution = setting.partition("|")
    return Tiles(url=url, attribution=attribution.strip())


def _security_headers(request: web.Request) -> dict[str, str]:
    tiles = tiles_of(request.app[SETTINGS_KEY].map_tiles)
    img = "'self' data:"
    if tiles is not None and tiles.url.startswith("http"):
        parts = urlsplit(tiles.url)
        img += f" {parts.scheme}://{parts.netloc.replace('{s}', '*')}"  # {s}: the server's subdomains
    return {
        "Content-Security-Policy": (
            f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {img}; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


@api.route("GET", "/", role=None, status=302)
async def root(request: web.Request) -> web.Response:
    """The live map (a redirect to /map)

    Redirects to `/map`. No token needed."""
    raise web.HTTPFound("/map")


@api.route("GET", "/map", role=None, response={"type": "string"}, media_type="text/html")
async def map_page(request: web.Request) -> web.StreamResponse:
    """The live map page

    The command room's live map (`?wall=1`: wall mode). The page holds no data and needs no token; it
    asks for one and then reads the API like any client."""
    return web.FileResponse(STATIC_DIR / "index.html", headers=_security_headers(request))


class StaticPath:
    """`path`: a file under the map's static folder."""

    name = "path"

    def openapi(self) -> dict[str, object]:
        """The OpenAPI parameter object."""
        return parameter(self.name, "path", self.__doc__, {"type": "string"}, required=True)

    def get(self, request: web.Request) -> Path:
        """The file, or NotFound for anything outside the folder or missing."""
        raw = request.match_info[self.name]
        target = (STATIC_DIR / raw).resolve()
        if not target.is_relative_to(STATIC_DIR) or not target.is_file() or raw.startswith("/"):
            raise NotFound(f"no static file {raw[:80]!r}")
        return target


STATIC_PATH = StaticPath()


@api.route(
    "GET",
    STATIC_PREFIX + "{path:.+}",
    role=None,
    params=[STATIC_PATH],
    response={"type": "string"},
    media_type="application/octet-stream",
    errors=[404],
)
async def static_file(request: web.Request) -> web.StreamResponse:
    """The map page's scripts, styles, images and shipped GeoJSON

    A file of the page (plain ES modules, the vendored Leaflet, the shipped base layer). No token."""
    target = STATIC_PATH.get(request)
    headers = _security_headers(request)
    if target.relative_to(STATIC_DIR).as_posix().startswith(_VENDOR):
        headers["Cache-Control"] = "public, max-age=86400"
    content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    headers["Content-Type"] = content_type
    return web.FileResponse(target, headers=headers)


# The route is registered with aiohttp's regex; the document names the plain template.
api.openapi_paths[STATIC_PREFIX + "{path}"] = api.openapi_paths.pop(STATIC_PREFIX + "{path:.+}")


@api.route("GET", "/v1/map/config", role="viewer", response=MapConfig)
async def map_config(request: web.Request) -> web.Response:
    """The live map's base layer and display settings

    Tiles (`OUTPOST_MAP_TILES`) when configured, the shipped GeoJSON layers, and when a fix is stale."""
    settings, who = request.app[SETTINGS_KEY], principal(request)
    return encode(
        MapConfig(
            role=who.role,
            token_name=who.name,
            tiles=tiles_of(settings.map_tiles),
            base_layers=SHIPPED_LAYERS,
            stale_after_s=settings.max_fix_age_s,
            center=(-122.4194, 37.7793),
            zoom=14,
        )
    )
