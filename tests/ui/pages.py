"""Steps the browser tests share: signing in, finding a domain's card, taking a screenshot."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Locator, Page, expect


def sign_in(page: Page, token: str, lands_on: str) -> None:
    page.goto("/ui/")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(lands_on) + "$"))


def card(page: Page, hostname: str) -> Locator:
    return page.locator(f'article.domain[data-domain="{hostname}"]')


def badge(page: Page, hostname: str) -> Locator:
    return card(page, hostname).locator(".badge")


def screenshot(page: Page, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def expect_no_message(page: Page) -> None:
    expect(page.locator("#page-message")).to_be_hidden()
