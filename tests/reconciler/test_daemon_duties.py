"""The daemon's duties that fail quietly if nobody looks: webhooks go out whenever WEBHOOK_URL is
set, and the lease's failures (a renewal, the release at stop) are logged, not swallowed."""

from __future__ import annotations

import logging
import time

import pytest

from domaingate.models import Tenant
from domaingate.settings import Settings, load_settings
from domaingate.states import Status
from domaingate.store import leases
from domaingate.store.abc import Database
from domaingate.store.errors import StoreBusy
from reconciler.lease import Lease

from .conftest import SECRET, FakeClock, Receiver, attach, holding


def locked(*_args: object, **_kwargs: object) -> None:
    raise StoreBusy("database is locked")


async def test_webhooks_go_out_without_a_session_passed_in(
    db: Database, tenant: Tenant, settings: Settings, receiver: Receiver
) -> None:
    hooked = load_settings(
        env={},
        db=settings.db,
        caddy_storage=settings.caddy_storage,
        reconciler_listen=settings.reconciler_listen,
        webhook_url=receiver.url,
        webhook_secret=SECRET,
    )
    await attach(db, tenant, "shop.acme.test", time.time, status=Status.VERIFIED)
    reconciler = await holding(hooked, db)
    try:
        assert reconciler.webhooks is not None
        assert await reconciler.deliver_webhooks() == 1
    finally:
        await reconciler.close()
    [delivered] = receiver.accepted()
    assert delivered.signed
    assert delivered.body["type"] == "domain.verified"


async def test_a_failed_renewal_is_logged_with_its_traceback(
    db: Database,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lease = Lease(db, ttl=30, holder="me")
    monkeypatch.setattr(leases, "take_lease", locked)
    with caplog.at_level(logging.WARNING, logger="reconciler.lease"):
        assert not await lease.renew()
    [record] = caplog.records
    assert "cannot renew the reconciler lease" in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], StoreBusy)


async def test_a_failed_release_at_stop_is_logged(
    db: Database,
    settings: Settings,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reconciler = await holding(settings, db, clock=clock)
    assert await reconciler.lease.renew()
    monkeypatch.setattr(leases, "release_lease", locked)
    with caplog.at_level(logging.ERROR, logger="reconciler.daemon"):
        await reconciler.close()
    [record] = caplog.records
    assert "could not release the reconciler lease at stop" in record.getMessage()
    assert record.exc_info is not None
