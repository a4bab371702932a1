"""Fixtures for the pages' browser tests: one stack for the package, one chromium per module, a
fresh browser context (so fresh session storage) per test, and a directory for screenshots under
pytest's basetemp for a person to look at."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.ui.stack import CHROMIUM, CHROMIUM_ARGS, EDGE_IPV4, PLATFORM, Stack

# The hostile finding and the hostile CNAME target sit in knot from the start. The platform's
# zone starts empty: `Stack.tenant()` publishes each app's CNAME target as it registers the app,
# and a test publishes a tenant's own records with `stack.knot.set_zone()`.
BASE_ZONES = {
    PLATFORM: "",
    # knot's zone files take `<`, `>` and `/` in a name only escaped: this is <b>bold</b>.acme.test.
    "acme.test": "hostile CNAME \\060b\\062bold\\060\\047b\\062.acme.test.\n",
    "evil.test": f'@ A {EDGE_IPV4}\n_domaingate TXT "<img src=x onerror=window.pwned=1>"\n',
}


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/test does)")
    running = Stack(tmp_path_factory.mktemp("ui-stack"), BASE_ZONES)
    try:
        running.start()
        yield running
    finally:
        running.stop()


# Per module, not wider: while Playwright's sync driver runs, its event loop counts as running
# in this thread, and pytest-asyncio could not start a test's loop after it.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(
        base_url=stack.url(""), viewport={"width": 1200, "height": 860}, device_scale_factor=1
    )
    try:
        opened = context.new_page()
        opened.set_default_timeout(15_000)
        yield opened
    finally:
        context.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Screenshots of each page, kept under pytest's basetemp (printed by the tests)."""
    return tmp_path_factory.mktemp("ui-screenshots", numbered=False)
