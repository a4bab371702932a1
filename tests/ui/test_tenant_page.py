"""A tenant's page in a real browser: attach a domain, read its records, publish them in knot and
watch the page turn `verified` by itself, verify now, read the events, detach."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import BASE_ZONES
from tests.ui.pages import badge, card, screenshot, sign_in
from tests.ui.stack import PER_APP, PLATFORM, Stack

# A real gateway, reconciler, knot and chromium.
pytestmark = pytest.mark.slow


def app_choices(page: Page) -> list[str]:
    """The values the attach form's app field offers, in order ("" is the prompt to choose)."""
    found = page.locator("#attach-app option").evaluate_all(
        "options => options.map(option => option.value)"
    )
    assert isinstance(found, list)
    return [str(value) for value in found]


def test_attach_publish_and_the_page_turns_verified_by_itself(
    page: Page, stack: Stack, shots: Path
) -> None:
    # The README's tenant and app (its screenshot comes from here); every other tenant's apps
    # carry the tenant's name, as app names are unique across tenants.
    token = stack.tenant("acme", "web")
    sign_in(page, token, "/ui/domains.html")
    expect(page.locator("#who")).to_have_text("tenant acme")
    expect(page.locator("#quota-tenant")).to_contain_text("0 of 10")
    expect(page.locator("#quota-app")).to_have_text(f"At most {PER_APP} domains per app.")

    page.fill("#attach-domain", "Shop.ACME.test.")
    # The only app registered is the one offered, already chosen.
    expect(page.locator("#attach-app")).to_have_value("web")
    page.click("#attach button[type=submit]")
    expect(page.locator("#attach-message")).to_contain_text("Attached shop.acme.test")
    expect(badge(page, "shop.acme.test")).to_have_text("pending")
    records = card(page, "shop.acme.test").locator("table.records tbody tr")
    expect(records).to_have_count(1)
    expect(records.nth(0)).to_contain_text("CNAME")
    expect(records.nth(0)).to_contain_text("shop.acme.test")
    expect(records.nth(0)).to_contain_text(f"web.{PLATFORM}")
    copy = records.nth(0).locator(f'button.copy[data-copy="web.{PLATFORM}"]')
    expect(copy).to_have_text("Copy value")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == f"web.{PLATFORM}"
    expect(page.locator("#quota-tenant")).to_contain_text("1 of 10")
    expect(page.locator(".app-usage")).to_contain_text(f"web: 1 of {PER_APP}")
    # The first check runs within a second: nothing is published yet.
    expect(card(page, "shop.acme.test").locator(".finding-bad")).to_contain_text(
        "nxdomain", timeout=30_000
    )
    expect(page.locator("#refresh-note")).to_contain_text("read again")
    screenshot(page, shots, "tenant-pending")

    # Publishing the record is all it takes: the reconciler checks, the page polls.
    stack.knot.set_zone("acme.test", BASE_ZONES["acme.test"] + f"shop CNAME web.{PLATFORM}.\n")
    expect(badge(page, "shop.acme.test")).to_have_text("verified", timeout=60_000)
    expect(card(page, "shop.acme.test").locator(".finding-good")).to_be_visible()

    # A certificate in Caddy's storage: the page shows its end once the reconciler sees it.
    stack.store_certificate("shop.acme.test", days_left=80, lifetime_days=90)
    expect(badge(page, "shop.acme.test")).to_have_text("active", timeout=90_000)
    expect(card(page, "shop.acme.test").locator(".cert")).to_contain_text("Expires:")
    expect(card(page, "shop.acme.test").locator(".cert")).to_contain_text("in 80 d")
    expect(card(page, "shop.acme.test").locator(".cert")).to_contain_text("UI Test CA")

    card(page, "shop.acme.test").locator("summary", has_text="Event history").click()
    events = card(page, "shop.acme.test").locator(".event-table tbody tr")
    expect(events).to_have_count(3)
    expect(events.nth(0)).to_contain_text("domain.active")
    expect(events.nth(1)).to_contain_text("domain.verified")
    expect(events.nth(2)).to_contain_text("domain.created")
    screenshot(page, shots, "tenant-active")

    card(page, "shop.acme.test").locator("button.verify").click()
    result = card(page, "shop.acme.test").locator(".verify-result")
    expect(result).to_contain_text("Verified: the DNS records are right")
    expect(result.locator("li.ok")).to_have_count(3)  # cname, caa, ns

    card(page, "shop.acme.test").locator("button.detach").click()
    confirm = card(page, "shop.acme.test").locator(".confirm")
    expect(confirm).to_contain_text("Detach shop.acme.test?")
    screenshot(page, shots, "tenant-detach-confirm")
    confirm.locator("button.cancel-detach").click()
    expect(confirm).to_have_count(0)
    assert stack.status("shop.acme.test") == "active"
    card(page, "shop.acme.test").locator("button.detach").click()
    card(page, "shop.acme.test").locator("button.confirm-detach").click()
    expect(page.locator("#page-message")).to_have_text("Detached shop.acme.test.")
    expect(card(page, "shop.acme.test")).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()
    assert stack.status("shop.acme.test") is None


def test_the_app_field_offers_the_tenants_registered_apps_only(
    page: Page, stack: Stack, shots: Path
) -> None:
    stack.tenant("wayne", "wayne-ops")  # another tenant's app, never offered
    token = stack.tenant("newco")
    sign_in(page, token, "/ui/domains.html")
    note = page.locator("#attach-apps-note")
    expect(note).to_contain_text("No app is registered for newco yet")
    expect(note).to_contain_text("The platform must register an app for this tenant first")
    expect(page.locator("#attach-app")).to_be_disabled()
    expect(page.locator("#attach button[type=submit]")).to_be_disabled()
    assert app_choices(page) == [""]
    expect(page.locator("#attach-app")).to_have_text("No app registered")
    screenshot(page, shots, "tenant-no-apps")

    stack.register_apps("newco", "newco-web", "newco-api")
    page.reload()
    expect(page.locator("#attach-app")).to_be_enabled()
    expect(note).to_be_hidden()
    # Two apps: none is chosen for the tenant, and the form is not sent until one is.
    assert app_choices(page) == ["", "newco-api", "newco-web"]
    expect(page.locator("#attach-app")).to_have_value("")
    page.fill("#attach-domain", "choose.acme.test")
    page.click("#attach button[type=submit]")
    assert page.locator("#attach-app").evaluate("select => select.validity.valueMissing")
    page.select_option("#attach-app", "newco-web")
    page.click("#attach button[type=submit]")
    expect(page.locator("#attach-message")).to_contain_text("Attached choose.acme.test")
    expect(card(page, "choose.acme.test").locator(".domain-head")).to_contain_text("app newco-web")
    expect(page.locator("#attach-app")).to_have_value("newco-web")
    assert stack.status("choose.acme.test") == "pending"
    screenshot(page, shots, "tenant-app-choice")

    # The platform removes an app while the page shows it: the API's refusal is shown and the
    # field is read again.
    stack.cli("apps", "remove", "newco", "newco-api")
    page.fill("#attach-domain", "gone-app.acme.test")
    page.select_option("#attach-app", "newco-api")
    page.click("#attach button[type=submit]")
    expect(page.locator("#attach-message")).to_contain_text(
        "app 'newco-api' is not one of this tenant's apps"
    )
    expect(page.locator("#attach-message")).to_contain_text("(INVALID_APP)")
    expect(page.locator("#attach-app option")).to_have_count(1)
    assert app_choices(page) == ["newco-web"]
    assert "wayne-ops" not in page.content()


def test_verify_now_shows_the_rate_limits_answer(page: Page, stack: Stack) -> None:
    token = stack.tenant("initech", "initech-web")
    stack.attach(token, "nothing.acme.test", "initech-web")
    sign_in(page, token, "/ui/domains.html")
    button = card(page, "nothing.acme.test").locator("button.verify")
    result = card(page, "nothing.acme.test").locator(".verify-result")
    for _ in range(5):
        button.click()
        expect(result).to_contain_text("Not verified yet")
        expect(button).to_be_enabled()
    expect(result.locator("li.bad")).to_contain_text("does not exist in DNS")
    button.click()
    expect(result).to_contain_text("The rate limit says no: too many verification requests")
    expect(result).to_contain_text("try again in")


def test_a_tenant_never_sees_another_tenants_domains(page: Page, stack: Stack) -> None:
    owner = stack.tenant("umbrella", "umbrella-web")
    stranger = stack.tenant("hooli", "hooli-blog")
    stack.attach(owner, "private.acme.test", "umbrella-web")
    stack.attach(stranger, "mine.acme.test", "hooli-blog")
    sign_in(page, stranger, "/ui/domains.html")
    expect(card(page, "mine.acme.test")).to_be_visible()
    expect(page.locator("article.domain")).to_have_count(1)
    # Nor another tenant's apps in the attach form.
    assert app_choices(page) == ["hooli-blog"]
    assert "private.acme.test" not in page.content()
    assert "umbrella" not in page.content()


def test_the_app_quota_is_shown_and_its_refusal_too(page: Page, stack: Stack) -> None:
    token = stack.tenant("vandelay", "vandelay-shop")
    for i in range(PER_APP):
        stack.attach(token, f"q{i}.acme.test", "vandelay-shop")
    sign_in(page, token, "/ui/domains.html")
    expect(page.locator(".app-usage")).to_contain_text(f"vandelay-shop: {PER_APP} of {PER_APP}")
    page.fill("#attach-domain", "one-more.acme.test")
    page.select_option("#attach-app", "vandelay-shop")
    page.click("#attach button[type=submit]")
    expect(page.locator("#attach-message")).to_have_text(
        f"the app 'vandelay-shop' already has {PER_APP} domains, its quota (QUOTA_EXCEEDED)"
    )


def test_pending_domains_are_read_again_gently(page: Page, stack: Stack) -> None:
    token = stack.tenant("gentle", "gentle-web")
    stack.attach(token, "later.acme.test", "gentle-web")
    calls: list[tuple[float, str, str]] = []
    page.on(
        "request",
        lambda request: calls.append((time.monotonic(), request.method, request.url)),
    )
    sign_in(page, token, "/ui/domains.html")
    expect(badge(page, "later.acme.test")).to_have_text("pending")
    started = time.monotonic()
    page.wait_for_timeout(14_000)
    api_calls = [(at, method, url) for at, method, url in calls if "/api/v1/" in url]
    # Reading, never checking: the reconciler checks, the page only looks.
    assert all(method == "GET" for _, method, _ in api_calls), api_calls
    polls = [at - started for at, _, url in api_calls if "/api/v1/domains?" in url and at > started]
    # The first poll 5 s after the page loaded, the next 7.5 s after that: two in 14 s.
    assert len(polls) == 2, polls
    assert polls[1] - polls[0] >= 7.0, polls
