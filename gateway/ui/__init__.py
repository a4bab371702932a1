"""The pages for people under /ui/: static HTML, CSS and JavaScript shipped with the package.

The pages call the REST API with the token the browser keeps in session storage, sent as a bearer
header; there are no cookies, so nothing here authenticates or has a CSRF surface. Every file is
read once at start and served from memory under a fixed name, so no request path ever reaches the
filesystem. Every /ui/ response, errors included, carries a strict Content-Security-Policy.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

PREFIX = "/ui/"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".png": "image/png",
}
# The landing page signs in; the others send the browser back to it without a token.
_ALIASES = {"": "index.html"}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The pages change with the package; a stale script against a newer API helps nobody.
    "Cache-Control": "no-cache",
}

FILES: web.AppKey[dict[str, tuple[bytes, str]]] = web.AppKey("ui_files")


def load_files() -> dict[str, tuple[bytes, str]]:
    """name → (content, content type) for every file in gateway/ui/static/."""
    found: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            found[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return found


async def page(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    found = request.app[FILES].get(_ALIASES.get(name, name))
    if found is None:
        raise web.HTTPNotFound()
    body, content_type = found
    return web.Response(body=body, headers={"Content-Type": content_type})


async def to_pages(request: web.Request) -> web.Response:
    raise web.HTTPFound(PREFIX)


async def _secure(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == "/ui" or request.path.startswith(PREFIX):
        response.headers.update(SECURITY_HEADERS)


def setup(app: web.Application) -> None:
    app[FILES] = load_files()
    app.router.add_get("/ui", to_pages)
    app.router.add_get(PREFIX + "{name:[A-Za-z0-9_.-]*}", page)
    app.on_response_prepare.append(_secure)
