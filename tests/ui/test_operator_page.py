"""The operator's page in a real browser: the reconciler's health and its jobs' last runs, counts
by status, what needs attention, and every tenant's domains filtered by status, tenant and app."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.support.domaingate import ADMIN_TOKEN
from tests.ui.conftest import BASE_ZONES
from tests.ui.pages import screenshot, sign_in
from tests.ui.stack import PLATFORM, Stack

# A real gateway, reconciler, knot and chromium.
pytestmark = pytest.mark.slow


def rows(page: Page, table: str) -> list[str]:
    found = page.locator(f"#{table} tbody tr").evaluate_all(
        "rows => rows.map(row => row.dataset.domain)"
    )
    assert isinstance(found, list)
    return [str(name) for name in found]


def test_health_counts_attention_and_filters(page: Page, stack: Stack, shots: Path) -> None:
    initrode = stack.tenant("initrode", "initrode-web", "initrode-shop")
    massive = stack.tenant("massive", "massive-blog")
    stack.knot.set_zone(
        "acme.test",
        BASE_ZONES["acme.test"]
        + f"www CNAME initrode-web.{PLATFORM}.\nstore CNAME initrode-shop.{PLATFORM}.\n"
        + f"news CNAME massive-blog.{PLATFORM}.\n",
    )
    stack.attach(initrode, "www.acme.test", "initrode-web")  # → active
    stack.attach(initrode, "store.acme.test", "initrode-shop")  # → expiring
    stack.attach(initrode, "gone.acme.test", "initrode-web")  # → failed
    stack.attach(massive, "news.acme.test", "massive-blog")  # → verified
    stack.attach(massive, "typo.acme.test", "massive-blog")  # stays pending, nxdomain
    for name in ("www.acme.test", "store.acme.test", "news.acme.test"):
        stack.wait_status(name, "verified")
    stack.store_certificate("www.acme.test", days_left=60, lifetime_days=90)
    stack.store_certificate("store.acme.test", days_left=3, lifetime_days=90)
    stack.wait_status("www.acme.test", "active")
    stack.wait_status("store.acme.test", "expiring")
    stack.fail("gone.acme.test")

    sign_in(page, ADMIN_TOKEN, "/ui/operator.html")
    health = page.locator("#health")
    expect(health).to_contain_text("held by")
    expect(page.locator("dd.fact-ok").first).to_be_visible()
    expect(health).to_contain_text("Webhook outbox")
    counts = page.locator("#counts")
    for status in ("pending", "verified", "active", "expiring", "failed"):
        expect(counts.locator(f'button[data-status="{status}"]')).to_be_visible()
    expect(counts.locator('button[data-status="failed"] .count-n')).not_to_have_text("0")

    attention = page.locator("#attention")
    expect(attention.locator('tr[data-domain="typo.acme.test"]')).to_contain_text("nxdomain")
    expect(attention.locator('tr[data-domain="gone.acme.test"]')).to_contain_text("failed")
    expect(attention.locator('tr[data-domain="store.acme.test"]')).to_contain_text(
        "certificate renewal overdue"
    )
    assert "www.acme.test" not in rows(page, "attention")
    assert "news.acme.test" not in rows(page, "attention")
    screenshot(page, shots, "operator")

    page.fill("#filter-tenant", "initrode")
    page.click("#filters button[type=submit]")
    expect(page.locator("#list-note")).to_contain_text("tenant initrode")
    assert sorted(rows(page, "all-domains")) == [
        "gone.acme.test",
        "store.acme.test",
        "www.acme.test",
    ]
    page.fill("#filter-app", "initrode-web")
    page.click("#filters button[type=submit]")
    expect(page.locator("#list-note")).to_contain_text("app initrode-web")
    assert sorted(rows(page, "all-domains")) == ["gone.acme.test", "www.acme.test"]
    page.select_option("#filter-status", "active")
    page.click("#filters button[type=submit]")
    expect(page.locator("#list-note")).to_contain_text("1 domain(s) — active, tenant initrode")
    assert rows(page, "all-domains") == ["www.acme.test"]
    # The edge whose storage holds the certificate: this host's reconciler reported it.
    edges = page.locator('#all-domains tr[data-domain="www.acme.test"] td.edges')
    expect(edges).to_have_text(socket.gethostname())
    screenshot(page, shots, "operator-filtered")

    page.click("#filters button[type=reset]")
    counts.locator('button[data-status="failed"]').click()
    expect(page.locator("#list-note")).to_contain_text("— failed")
    statuses = page.locator("#all-domains tbody .badge").all_inner_texts()
    assert statuses and set(statuses) == {"failed"}
    assert "gone.acme.test" in rows(page, "all-domains")

    page.fill("#filter-tenant", "nobody")
    page.click("#filters button[type=submit]")
    expect(page.locator("#list-note")).to_contain_text("names no tenant")
    assert rows(page, "all-domains") == []


def test_last_runs_show_each_job_and_flag_the_late(page: Page, stack: Stack, shots: Path) -> None:
    sign_in(page, ADMIN_TOKEN, "/ui/operator.html")
    runs = page.locator("#runs")
    # The stack's reconciler (the lease holder) records its own runs.
    for job in ("lease", "dns", "certs", "cleanup"):
        row = runs.locator(f'tr[data-job="{job}"]')
        expect(row).to_have_attribute("data-state", "ok")
        expect(row.locator("td").nth(1)).to_contain_text("UTC")
    # No WEBHOOK_URL here: webhook delivery never runs, so its row is written by hand, an hour
    # old and failed; the error is shown as text, never as markup.
    error = "TimeoutError: <img src=x onerror=alert(1)> did not answer"
    now = time.time()
    with contextlib.closing(sqlite3.connect(stack.db, timeout=5)) as conn, conn:
        conn.execute(
            "INSERT INTO job_runs (job, last_run_at, last_ok_at, last_error) VALUES (?, ?, ?, ?)",
            ("webhooks", now - 3600, now - 7200, error),
        )
    try:
        page.click("#refresh")
        webhooks = runs.locator('tr[data-job="webhooks"]')
        expect(webhooks).to_have_attribute("data-state", "late")
        expect(webhooks.locator("td.fact-bad")).to_have_text("late")
        expect(webhooks.locator("td").nth(1)).to_contain_text("1 h ago")
        expect(webhooks.locator("td").nth(2)).to_contain_text("2 h ago")
        expect(webhooks.locator("td.problem")).to_have_text(error)
        assert runs.locator("img").count() == 0
        screenshot(page, shots, "operator-runs")
    finally:
        with contextlib.closing(sqlite3.connect(stack.db, timeout=5)) as conn, conn:
            conn.execute("DELETE FROM job_runs WHERE job = 'webhooks'")
