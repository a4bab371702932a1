"""Webhook delivery against a real HTTP receiver: signed, retried, at least once across restarts."""

from __future__ import annotations

import asyncio
import base64
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from domaingate.models import Tenant
from domaingate.settings import Settings, load_settings
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store.abc import Database
from domaingate.times import rfc3339
from reconciler.daemon import run
from reconciler.tuning import Tuning
from reconciler.webhooks import Backoff, WebhookSender
from tests.support.wait import await_until

from .conftest import SECRET, Receiver, attach

FAST = Backoff(base=0.05, cap=0.2)


async def outbox(db: Database) -> dict[str, tuple[int, float | None]]:
    async with db.reader.execute(
        "SELECT event_id, attempts, delivered_at FROM webhook_outbox"
    ) as cursor:
        return {row[0]: (row[1], row[2]) async for row in cursor}


async def make_events(
    db: Database, tenant: Tenant, clock: Callable[[], float] = time.time
) -> list[str]:
    """Five webhook events: verified, active, expiring, failed, removed (and their outbox rows)."""
    a = await attach(db, tenant, "a.acme.test", clock, status=Status.EXPIRING)
    b = await attach(db, tenant, "b.acme.test", clock, status=Status.FAILED)
    await domain_store.remove(db, b, clock)
    async with db.reader.execute(
        "SELECT e.event_id FROM domain_events e JOIN webhook_outbox o USING (event_id)"
        " ORDER BY e.id"
    ) as cursor:
        ids = [row[0] async for row in cursor]
    assert len(ids) == 5 and a.status is Status.EXPIRING
    return ids


def test_backoff_doubles_up_to_the_cap() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(1, 6)] == [5, 10, 20, 40, 80]
    assert backoff.delay(11) == 3600
    assert backoff.delay(10_000) == 3600
    with pytest.raises(ValueError):
        Backoff(base=0)


async def test_failed_attempts_are_retried_and_every_event_arrives_once(
    db: Database, tenant: Tenant, receiver: Receiver
) -> None:
    ids = await make_events(db, tenant)
    receiver.fail_first = 2
    # A clock the test moves: "not due before the back-off has passed" must not depend on how
    # fast a loaded machine gets from one call to the next.
    now = [time.time()]
    async with aiohttp.ClientSession() as session:
        sender = WebhookSender(
            db, session, url=receiver.url, secret=SECRET, clock=lambda: now[0], backoff=FAST
        )
        first = await sender.deliver_due()
        assert (first.delivered, first.failed) == (0, 5)
        # Not due again until the back-off has passed.
        assert (await sender.deliver_due()).failed == 0

        async def all_delivered() -> bool:
            now[0] += FAST.cap
            await sender.deliver_due()
            return all(at is not None for _n, at in (await outbox(db)).values())

        await await_until(all_delivered, timeout=10)

    assert all(r.signed for r in receiver.requests)
    assert sorted(r.event_id for r in receiver.accepted()) == sorted(ids)
    assert [r.event_id for r in receiver.requests].count(ids[0]) == 3
    assert {n for n, _at in (await outbox(db)).values()} == {3}

    by_id = {r.event_id: r.body for r in receiver.accepted()}
    assert [by_id[i]["type"] for i in ids] == [
        "domain.verified",
        "domain.active",
        "domain.expiring",
        "domain.failed",
        "domain.removed",
    ]
    removed = by_id[ids[-1]]
    assert removed["data"] == {
        "domain": "b.acme.test",
        "tenant": "acme",
        "app": "shop",
        "status": "removed",
        "from_status": "failed",
        "reason": None,
        "message": "domain detached",
    }
    created = str(removed["created_at"])
    assert created.endswith("Z") and created[:4].isdigit()


async def test_unreachable_endpoint_is_retried_later(db: Database, tenant: Tenant) -> None:
    await make_events(db, tenant)
    async with aiohttp.ClientSession() as session:
        # Port 9 on loopback: nothing listens, the connection is refused at once.
        sender = WebhookSender(
            db, session, url="http://127.0.0.1:9/x", secret=SECRET, clock=time.time, backoff=FAST
        )
        result = await sender.deliver_due()
    # The first refusal ends the batch: the others would only fail the same way.
    assert (result.delivered, result.failed) == (0, 1)
    rows = await outbox(db)
    assert sorted(n for n, _at in rows.values()) == [0, 0, 0, 0, 1]


async def test_delivery_survives_a_reconciler_restart(
    db: Database, tenant: Tenant, receiver: Receiver, settings: Settings
) -> None:
    ids = await make_events(db, tenant)
    hooked = load_settings(
        env={},
        db=settings.db,
        caddy_storage=settings.caddy_storage,
        resolvers=settings.resolvers,
        reconciler_listen=settings.reconciler_listen,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
    )
    tuning = Tuning(lease_ttl=2, webhook_interval=0.05, webhook_backoff=FAST)

    # First run: the receiver is down (HTTP 500) and sees every event at least once.
    receiver.failing = True
    stop = asyncio.Event()
    daemon = asyncio.create_task(run(hooked, stop, tuning=tuning))
    # At least every event made here: the daemon's certificate scan may add one (see below).
    await await_until(lambda: {r.event_id for r in receiver.requests} >= set(ids), timeout=10)
    stop.set()
    await daemon
    assert receiver.accepted() == []
    rows = await outbox(db)
    # Every attempt was recorded before the daemon stopped. (The daemon's own certificate scan
    # may have added an event: "a" is expiring with no certificate stored, so it moved back to
    # verified; that row is delivered below like the others.)
    assert set(ids) <= rows.keys()
    assert all(rows[r.event_id][0] >= 1 for r in receiver.requests)
    assert all(at is None for _n, at in rows.values())

    # Second run, a new process's worth of state (new Database, new session, new scheduler).
    receiver.failing = False
    stop = asyncio.Event()
    daemon = asyncio.create_task(run(hooked, stop, tuning=tuning))

    async def delivered() -> bool:
        return all(at is not None for _n, at in (await outbox(db)).values())

    await await_until(delivered, timeout=10)
    stop.set()
    await daemon

    accepted = [r.event_id for r in receiver.accepted()]
    assert sorted(accepted) == sorted((await outbox(db)).keys())  # no loss, no duplicate
    assert set(ids) <= set(accepted)
    assert all(r.signed for r in receiver.requests)
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"


# --- signatures, as receivers verify them ----------------------------------------------------

# A secret as the Standard Webhooks libraries make one (`whsec_` and 32 random bytes in base64).
WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()
MAX_AGE = 5 * 60  # what the libraries tolerate between a delivery's timestamp and their clock


@pytest.mark.parametrize(
    ("secret", "as_the_receiver_holds_it"),
    [(WHSEC, WHSEC), (SECRET, SECRET.encode())],
    ids=["whsec", "any-string"],
)
async def test_deliveries_verify_with_the_standardwebhooks_library(
    db: Database, tenant: Tenant, secret: str, as_the_receiver_holds_it: str | bytes
) -> None:
    ids = await make_events(db, tenant)
    receiver = Receiver(as_the_receiver_holds_it)
    await receiver.start()
    try:
        async with aiohttp.ClientSession() as session:
            sender = WebhookSender(db, session, url=receiver.url, secret=secret, clock=time.time)
            assert (await sender.deliver_due()).delivered == 5
    finally:
        await receiver.close()
    assert [r.event_id for r in receiver.accepted()] == ids
    for request in receiver.requests:
        assert request.headers["webhook-id"] == request.body["id"]
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
        assert request.headers["webhook-signature"].startswith("v1,")
        assert "X-Domaingate-Signature" not in request.headers


async def test_a_delivery_signed_with_another_secret_is_refused(
    db: Database, tenant: Tenant, receiver: Receiver
) -> None:
    await make_events(db, tenant)
    async with aiohttp.ClientSession() as session:
        sender = WebhookSender(db, session, url=receiver.url, secret=WHSEC, clock=time.time)
        assert (await sender.deliver_due()).failed == 5
    assert receiver.accepted() == [] and not any(r.signed for r in receiver.requests)


async def test_a_captured_delivery_replayed_later_is_refused(
    db: Database, tenant: Tenant, receiver: Receiver
) -> None:
    """Someone who captured a delivery sends it again once it is older than the receiver's
    tolerance: refused by its age. Given a fresh timestamp instead, it no longer matches its
    signature: refused too."""
    captured_at = time.time() - MAX_AGE - 60
    await make_events(db, tenant, lambda: captured_at)
    async with aiohttp.ClientSession() as session:
        sender = WebhookSender(
            db, session, url=receiver.url, secret=SECRET, clock=lambda: captured_at
        )
        assert (await sender.deliver_due()).failed == 5  # the replay of a delivery made then
        captured = receiver.requests[0]
        with pytest.raises(WebhookVerificationError, match="too old"):
            Webhook(SECRET.encode()).verify(captured.raw, captured.headers)

        refreshed = {**captured.headers, "webhook-timestamp": str(int(time.time()))}
        async with session.post(receiver.url, data=captured.raw, headers=refreshed) as answer:
            assert answer.status == 500
        with pytest.raises(WebhookVerificationError, match="No matching signature"):
            Webhook(SECRET.encode()).verify(captured.raw, refreshed)
    assert receiver.accepted() == []


async def test_the_readme_receiver_accepts_deliveries_and_refuses_forgeries(
    db: Database, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """The receiver the README shows, run as written (with a real secret), behind a real
    listener."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Webhooks") :]
    source = section[section.index("```python\n") + 10 : section.index("```\n", 10)]
    namespace: dict[str, Any] = {}
    exec(source.replace('"whsec_…"', repr(WHSEC)), namespace)
    app = web.Application()
    app.router.add_post("/hooks", namespace["receive"])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    try:
        ids = await make_events(db, tenant)
        async with aiohttp.ClientSession() as session:
            forged = WebhookSender(
                db, session, url=url, secret=SECRET, clock=time.time, backoff=FAST
            )
            assert (await forged.deliver_due()).failed == len(ids)  # 400 each: another secret
            sender = WebhookSender(
                db, session, url=url, secret=WHSEC, clock=time.time, backoff=FAST
            )
            delivered = 0
            for _ in range(50):
                delivered += (await sender.deliver_due()).delivered
                if delivered == len(ids):
                    break
                await asyncio.sleep(0.05)
        assert delivered == len(ids)
    finally:
        await runner.cleanup()
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(ids)
    assert "domain.verified a.acme.test verified" in printed


class HugeAnswer:
    """A receiver on 127.0.0.1 that answers every delivery with `status` and a chunked body of
    HUGE octets, written as fast as the client takes it; counts what it managed to send."""

    HUGE = 200 * 1024 * 1024

    def __init__(self, status: int) -> None:
        self.status = status
        self.sent = 0
        self.finished = 0  # answers that ended, written whole or cut off by the client

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=self.status)
        response.enable_chunked_encoding()
        chunk = b"x" * (1 << 16)
        try:
            await response.prepare(request)
            while self.sent < self.HUGE:
                await response.write(chunk)
                self.sent += len(chunk)
            await response.write_eof()
        except ConnectionError:
            pass  # the client closed the connection: what it did not read was never sent
        finally:
            self.finished += 1
        return response


@pytest.mark.parametrize(("status", "delivered"), [(200, True), (503, False)])
async def test_a_huge_answer_is_not_read_whole(
    db: Database, tenant: Tenant, status: int, delivered: bool
) -> None:
    """A receiver, or a proxy or captive portal at WEBHOOK_URL, answering with a body of 200 MiB:
    the status decides the outcome, and the reconciler neither reads nor holds the body."""
    domain = await attach(db, tenant, "a.acme.test", time.time, status=Status.VERIFIED)
    assert domain.status is Status.VERIFIED  # one event, domain.verified, in the outbox
    huge = HugeAnswer(status)
    app = web.Application()
    app.router.add_post("/hooks", huge.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks"
    tracemalloc.start()
    try:
        async with aiohttp.ClientSession() as session:
            sender = WebhookSender(db, session, url=url, secret=SECRET, clock=time.time)
            result = await sender.deliver_due()
        _now, peak = tracemalloc.get_traced_memory()
        await await_until(lambda: huge.finished == 1, timeout=10, what="the answer to end")
    finally:
        tracemalloc.stop()
        await runner.cleanup()
    assert (result.delivered, result.failed) == ((1, 0) if delivered else (0, 1))
    [(attempts, delivered_at)] = (await outbox(db)).values()
    assert (attempts, delivered_at is not None) == (1, delivered)
    # What the client did not read stays in the sockets' buffers: a few MiB at most.
    assert huge.sent < huge.HUGE // 8, f"{huge.sent} octets sent before the client closed"
    assert peak < 16 * 1024 * 1024, f"{peak} octets allocated at the peak"
