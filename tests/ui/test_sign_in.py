"""Signing in: the token goes to session storage and nowhere else; a wrong or revoked token gets a
clear message; each token lands on its own page."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.domaingate import ADMIN_TOKEN
from tests.ui.pages import screenshot, sign_in
from tests.ui.stack import Stack

# A real gateway, reconciler, knot and chromium.
pytestmark = pytest.mark.slow

NOT_ACCEPTED = "This token is not accepted: it is unknown or has been revoked."


def test_a_tenants_token_is_kept_in_session_storage_only(
    page: Page, stack: Stack, shots: Path
) -> None:
    token = stack.tenant("soylent")
    page.goto("/ui/")
    expect(page.locator("h1")).to_have_text("domaingate")
    screenshot(page, shots, "sign-in")
    sign_in(page, token, "/ui/domains.html")
    assert page.evaluate("sessionStorage.getItem('domaingate.token')") == token
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    page.click("#sign-out")
    page.wait_for_url("**/ui/index.html")
    assert page.evaluate("sessionStorage.getItem('domaingate.token')") is None


def test_a_wrong_token_gets_a_clear_message(page: Page, stack: Stack, shots: Path) -> None:
    page.goto("/ui/")
    page.fill("#token", "dgt_" + "0" * 64)
    page.click("button[type=submit]")
    expect(page.locator("#signin-message")).to_contain_text(NOT_ACCEPTED)
    assert page.url.endswith("/ui/")
    assert page.evaluate("sessionStorage.getItem('domaingate.token')") is None
    screenshot(page, shots, "sign-in-wrong-token")


def test_a_token_revoked_while_signed_in_sends_back_to_sign_in(page: Page, stack: Stack) -> None:
    token = stack.tenant("wonka")
    sign_in(page, token, "/ui/domains.html")
    stack.cli("tenant", "revoke", "wonka")
    page.reload()
    page.wait_for_url("**/ui/index.html")
    expect(page.locator("#signin-message")).to_contain_text("no longer accepted")
    page.fill("#token", token)
    page.click("button[type=submit]")
    expect(page.locator("#signin-message")).to_contain_text(NOT_ACCEPTED)


def test_the_admin_token_opens_the_operators_page(page: Page, stack: Stack) -> None:
    sign_in(page, ADMIN_TOKEN, "/ui/operator.html")
    expect(page.locator("#health")).to_contain_text("Lease")


def test_a_tenant_on_the_operators_page_is_told_it_needs_the_admin_token(
    page: Page, stack: Stack
) -> None:
    sign_in(page, stack.tenant("cyberdyne"), "/ui/domains.html")
    page.goto("/ui/operator.html")
    expect(page.locator("#page-message")).to_contain_text("This page needs the admin token")


def test_a_page_without_a_token_sends_to_sign_in(page: Page, stack: Stack) -> None:
    page.goto("/ui/domains.html")
    page.wait_for_url("**/ui/index.html")
    expect(page.locator("#signin-message")).to_have_text("Sign in first.")
