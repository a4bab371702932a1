"""How /ui/ is served: fixed files from memory, a strict Content-Security-Policy on every answer,
and pages that keep to it (no inline script or style, no HTML built from strings)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from fnmatch import fnmatch
from pathlib import Path

import pytest

from gateway import ui
from tests.conftest import Api

STATIC = Path(ui.__file__).parent / "static"
ROOT = Path(__file__).resolve().parents[2]
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGES = ["index.html", "domains.html", "operator.html"]


def assert_secured(headers: Mapping[str, str]) -> None:
    assert headers.get("Content-Security-Policy") == CSP
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Referrer-Policy") == "no-referrer"
    assert "Set-Cookie" not in headers


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/ui/", "text/html"),
        ("/ui/index.html", "text/html"),
        ("/ui/domains.html", "text/html"),
        ("/ui/operator.html", "text/html"),
        ("/ui/style.css", "text/css"),
        ("/ui/common.js", "text/javascript"),
        ("/ui/tenant.js", "text/javascript"),
        ("/ui/operator.js", "text/javascript"),
        ("/ui/signin.js", "text/javascript"),
    ],
)
async def test_each_file_is_served_with_its_type_and_the_policy(
    api: Api, path: str, content_type: str
) -> None:
    reply = await api.call("GET", path)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith(content_type)
    assert_secured(reply.headers)


async def test_the_bare_prefix_redirects_to_the_sign_in_page(api: Api) -> None:
    async with api.client.get("/ui", allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/ui/"
        assert_secured(response.headers)


@pytest.mark.parametrize(
    "path",
    [
        "/ui/missing.html",
        "/ui/..%2Fapp.py",
        "/ui/__init__.py",
        "/ui/static",
        "/ui/.hidden",
        "/ui/a/b.js",
    ],
)
async def test_anything_else_is_a_json_404_under_the_same_policy(api: Api, path: str) -> None:
    reply = await api.call("GET", path)
    assert reply.status == 404
    assert reply.code == "NOT_FOUND"
    assert_secured(reply.headers)


async def test_the_pages_need_no_token_and_send_no_cookie(api: Api) -> None:
    reply = await api.call("GET", "/ui/domains.html")
    assert reply.status == 200
    assert "Set-Cookie" not in reply.headers


def test_the_pages_hold_no_inline_script_or_style() -> None:
    for name in PAGES:
        html = (STATIC / name).read_text()
        for script in re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S):
            assert script.strip() == "", f"inline script in {name}"
        assert re.findall(r"<script\b(?![^>]*\bsrc=)", html) == [], name
        assert "<style" not in html and " style=" not in html, name
        assert not re.search(r"\son[a-z]+=", html), f"inline event handler in {name}"


def test_the_scripts_never_build_html_from_strings() -> None:
    scripts = sorted(STATIC.glob("*.js"))
    assert {path.name for path in scripts} >= {"common.js", "tenant.js", "operator.js"}
    for path in scripts:
        source = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{sink} in {path.name}"
        # The token is only ever kept in session storage: no cookies, nothing that outlives a tab.
        assert "localStorage" not in source and "document.cookie" not in source, path.name


def test_every_file_ships_as_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["gateway.ui.static"]
    assert {"gateway.ui", "gateway.ui.static"} <= set(config["tool"]["setuptools"]["packages"])
    for path in STATIC.iterdir():
        assert any(fnmatch(path.name, pattern) for pattern in patterns), path.name
    assert set(ui.load_files()) == {path.name for path in STATIC.iterdir()}


def test_the_token_field_is_never_submitted_by_the_browser_itself() -> None:
    # Without a name, a form submitted with the script missing sends no token in a URL.
    field = re.search(r"<input\b[^>]*\bid=\"token\"[^>]*>", (STATIC / "index.html").read_text())
    assert field is not None
    assert " name=" not in field.group(0)
    assert 'type="password"' in field.group(0)
