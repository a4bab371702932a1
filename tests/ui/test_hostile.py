"""Hostile input shown as text, never markup: hostnames a tenant types (the API refuses most, and
its refusal quotes them), IDN and long names, and DNS answers that end up in findings."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.ui.pages import badge, card, screenshot, sign_in
from tests.ui.stack import Stack

# A real gateway, reconciler, knot and chromium.
pytestmark = pytest.mark.slow

MARKUP = '<img src=x onerror="window.pwned=1">.acme.test'


def attach(page: Page, domain: str, app: str) -> None:
    page.fill("#attach-domain", domain)
    page.select_option("#attach-app", app)
    page.click("#attach button[type=submit]")


def test_a_hostile_hostname_is_refused_and_quoted_as_text(page: Page, stack: Stack) -> None:
    dialogs: list[str] = []

    def seen(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", seen)
    sign_in(page, stack.tenant("evil-corp", "evil-corp-web"), "/ui/domains.html")
    attach(page, MARKUP, "evil-corp-web")
    message = page.locator("#attach-message")
    expect(message).to_contain_text("is not a valid hostname")
    expect(message).to_contain_text('<img src=x onerror="window.pwned=1">')
    assert message.locator("img").count() == 0
    attach(page, "<script>alert(1)</script>.acme.test", "evil-corp-web")
    expect(message).to_contain_text("<script>alert(1)</script>")
    assert message.locator("script").count() == 0
    too_long = ".".join(["a" * 63] * 4) + ".acme.test"
    attach(page, too_long, "evil-corp-web")
    expect(message).to_contain_text("is not a valid hostname")
    expect(message).to_contain_text("INVALID_HOSTNAME")
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    expect(page.locator("article.domain")).to_have_count(0)


def test_idn_and_long_names_are_shown_whole(page: Page, stack: Stack, shots: Path) -> None:
    sign_in(page, stack.tenant("globex", "globex-web"), "/ui/domains.html")
    attach(page, "Bücher.acme.test", "globex-web")
    expect(badge(page, "xn--bcher-kva.acme.test")).to_have_text("pending")
    long_name = ".".join(["l" * 63, "o" * 63, "n" * 60]) + ".acme.test"
    attach(page, long_name, "globex-web")
    expect(card(page, long_name).locator("h3")).to_have_text(long_name)
    expect(card(page, long_name).locator(".finding-bad")).to_contain_text(
        "nxdomain", timeout=30_000
    )
    # The long name wraps inside its card instead of widening the page.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1200, width
    screenshot(page, shots, "tenant-idn-and-long-names")


def test_hostile_dns_answers_in_findings_are_text(page: Page, stack: Stack, shots: Path) -> None:
    token = stack.tenant("hostile", "hostile-web")
    # knot holds a CNAME to <b>bold</b>.acme.test and a TXT of `<img … onerror=…>` at evil.test.
    stack.attach(token, "hostile.acme.test", "hostile-web")
    stack.attach(token, "evil.test", "hostile-web")
    sign_in(page, token, "/ui/domains.html")
    cname = card(page, "hostile.acme.test").locator(".finding-bad")
    expect(cname).to_contain_text("cname_wrong_target", timeout=30_000)
    expect(cname).to_contain_text("is a CNAME to <b>bold</b>.acme.test")
    assert cname.locator("b").count() == 0
    txt = card(page, "evil.test").locator(".finding-bad")
    expect(txt).to_contain_text("token_mismatch", timeout=30_000)
    expect(txt).to_contain_text("'<img src=x onerror=window.pwned=1>'")
    assert card(page, "evil.test").locator("img").count() == 0
    # The same findings in a verify-now answer, one per check.
    card(page, "hostile.acme.test").locator("button.verify").click()
    checks = card(page, "hostile.acme.test").locator(".verify-result li.bad")
    expect(checks.first).to_contain_text("<b>bold</b>.acme.test")
    assert card(page, "hostile.acme.test").locator(".verify-result b").count() == 0
    assert page.evaluate("window.pwned") is None
    screenshot(page, shots, "tenant-hostile-findings")
