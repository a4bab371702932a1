"""Removal clean-up against the other claims on a name: the removed claim's certificate goes unless
another claim on the name is allowed (and so holds it); a pending or failed rival, of any tenant,
does not keep it in Caddy's storage. On both backends.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from domaingate import hostnames
from domaingate.dns.checker import DnsChecker
from domaingate.lifecycle.claims import HOSTNAME_TAKEN
from domaingate.models import Domain, Tenant
from domaingate.settings import Settings
from domaingate.states import Status
from domaingate.store import apps, tenants
from domaingate.store import domains as domain_store
from domaingate.store.abc import Database
from domaingate.verification import verify_now
from reconciler.cleanup import clean_removed
from tests.support.checkers import PassingChecker

from .conftest import DAY, FakeClock, attach, make_issuer, make_leaf_pem, store_cert, walk

LE = "acme-v02.api.letsencrypt.org-directory"
NAME = "shop.contested.example"


async def rival(db: Database, clock: FakeClock) -> tuple[Tenant, Domain]:
    """Another tenant's claim on NAME, with its own app (pending: nobody holds the name yet)."""
    globex, _token = await tenants.create(db, "globex", clock)
    await apps.put(db, globex, "vault", None, clock)
    policy = domain_store.AttachPolicy(require_txt=False, quota=10, first_check_in=3600)
    host = hostnames.parse(NAME, ("apps.example.net",))
    return globex, await domain_store.attach(db, globex, host, "vault", policy, clock)


def certificate_files(storage: Path) -> list[Path]:
    return sorted((storage / "certificates").glob(f"*/{NAME}/*"))


def plant_certificate(storage: Path, clock: FakeClock) -> None:
    pem = make_leaf_pem(make_issuer("R11"), [NAME], clock() - DAY, clock() + 60 * DAY)
    store_cert(storage, LE, NAME, pem)
    assert len(certificate_files(storage)) == 3


async def cleaned_at(db: Database, domain: Domain) -> float | None:
    async with db.reader.execute(
        "SELECT certs_cleaned_at FROM domains WHERE id = ?", (domain.id,)
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return cast(float | None, row[0])


async def test_a_failed_rival_claim_does_not_keep_a_removed_claims_certificate(
    db: Database, tenant: Tenant, settings: Settings, storage: Path, clock: FakeClock
) -> None:
    _globex, theirs = await rival(db, clock)
    mine = await attach(db, tenant, NAME, clock)
    checker = cast(DnsChecker, PassingChecker())
    mine, _ = await verify_now(db, checker, settings, mine, clock)
    assert mine.status is Status.VERIFIED
    # Acme's verification took the name: the rival's claim failed, and stays a live row.
    theirs = await domain_store.get_by_id(db, theirs.id)
    assert (theirs.status, theirs.last_check_code) == (Status.FAILED, HOSTNAME_TAKEN)
    plant_certificate(storage, clock)

    await domain_store.remove(db, mine, clock)
    result = await clean_removed(db, storage, clock)

    assert (result.cleaned, result.kept_live, result.deleted_dirs, result.errors) == (1, 0, 1, 0)
    assert certificate_files(storage) == []
    assert await cleaned_at(db, mine) == clock()
    assert (await domain_store.get_by_id(db, theirs.id)).status is Status.FAILED


async def test_a_pending_claim_does_not_keep_a_removed_claims_certificate(
    db: Database, tenant: Tenant, storage: Path, clock: FakeClock
) -> None:
    mine = await attach(db, tenant, NAME, clock, status=Status.ACTIVE)
    plant_certificate(storage, clock)
    await domain_store.remove(db, mine, clock)
    # Attached again at once, not proven yet: the gate refuses it, so must the storage.
    again = await attach(db, tenant, NAME, clock)

    result = await clean_removed(db, storage, clock)

    assert (result.cleaned, result.kept_live, result.deleted_dirs) == (1, 0, 1)
    assert certificate_files(storage) == []
    assert (await domain_store.get_by_id(db, again.id)).status is Status.PENDING


async def test_an_allowed_claim_keeps_the_certificate_until_its_own_removal(
    db: Database, tenant: Tenant, storage: Path, clock: FakeClock
) -> None:
    mine = await attach(db, tenant, NAME, clock, status=Status.ACTIVE)
    plant_certificate(storage, clock)
    await domain_store.remove(db, mine, clock)
    again = await attach(db, tenant, NAME, clock, status=Status.VERIFIED)

    # The certificate serves the claim that holds the name now; the first removal is done with.
    first = await clean_removed(db, storage, clock)
    assert (first.cleaned, first.kept_live, first.deleted_dirs) == (1, 1, 0)
    assert len(certificate_files(storage)) == 3
    assert await cleaned_at(db, mine) == clock()

    # The holder's own removal, proven too, takes the certificate with it.
    await domain_store.remove(db, again, clock)
    second = await clean_removed(db, storage, clock)
    assert (second.cleaned, second.kept_live, second.deleted_dirs) == (1, 0, 1)
    assert certificate_files(storage) == []


async def test_a_holder_that_failed_since_does_not_keep_the_certificate(
    db: Database, tenant: Tenant, storage: Path, clock: FakeClock
) -> None:
    """The claim that held the name has failed (its DNS moved away) by the time the removal is
    cleaned: nothing allowed holds the name, so the certificate goes."""
    mine = await attach(db, tenant, NAME, clock, status=Status.ACTIVE)
    plant_certificate(storage, clock)
    await domain_store.remove(db, mine, clock)
    again = await attach(db, tenant, NAME, clock, status=Status.VERIFIED)
    await walk(db, again, (Status.FAILED,), clock)

    result = await clean_removed(db, storage, clock)

    assert (result.cleaned, result.kept_live, result.deleted_dirs) == (1, 0, 1)
    assert certificate_files(storage) == []
