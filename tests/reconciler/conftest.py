"""Fixtures for the reconciler tests, on both backends (SQLite and PostgreSQL): the store of the
shared `settings` (tests/conftest.py), tenants, domains in any status, certificates made with
`cryptography` in a Caddy-shaped storage tree, a controllable clock, and the daemon itself running
in the test's event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from standardwebhooks import Webhook, WebhookVerificationError

from domaingate import hostnames
from domaingate.models import Domain, Tenant
from domaingate.settings import Settings
from domaingate.states import Status
from domaingate.store import apps, moves, tenants
from domaingate.store import domains as domain_store
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from reconciler.daemon import Reconciler, run
from reconciler.tuning import Tuning
from tests.conftest import T0 as T0
from tests.conftest import FakeClock as FakeClock
from tests.conftest import both_backends
from tests.support.wait import await_until

DAY = 86400.0


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    """The reconciler's tests run on both backends."""
    return both_backends(request, db_path)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    async with await open_database(settings.db) as database:
        yield database


@pytest.fixture
async def tenant(db: Database, clock: FakeClock) -> Tenant:
    created, _token = await tenants.create(db, "acme", clock)
    return created


# The shortest path from pending to each status, through the state table.
PATHS: dict[Status, tuple[Status, ...]] = {
    Status.PENDING: (),
    Status.VERIFIED: (Status.VERIFIED,),
    Status.ACTIVE: (Status.VERIFIED, Status.ACTIVE),
    Status.EXPIRING: (Status.VERIFIED, Status.ACTIVE, Status.EXPIRING),
    Status.FAILED: (Status.FAILED,),
    Status.REMOVED: (Status.REMOVED,),
}


async def holding(settings: Settings, db: Database, **kwargs: Any) -> Reconciler:
    """A Reconciler that holds the lease, for a test that runs its jobs one by one: they write
    only while it does (reconciler.daemon's fenced database). Every one a test makes holds it as
    the same holder, unless told otherwise."""
    kwargs.setdefault("holder", "tests")
    reconciler = Reconciler(settings, db, **kwargs)
    assert await reconciler.lease.renew()
    return reconciler


async def attach(
    db: Database,
    tenant: Tenant,
    name: str,
    clock: Callable[[], float],
    *,
    status: Status = Status.PENDING,
    first_check_in: float = 3600.0,
    app: str = "shop",
) -> Domain:
    """Attach `name` and walk it to `status` through real transitions."""
    host = hostnames.parse(name, ("apps.example.net",))
    # Set-up, not a tenant: scenarios attach more than a tenant may hold, or attach in an hour.
    policy = domain_store.AttachPolicy(
        require_txt=False, quota=10_000, first_check_in=first_check_in, hourly_attaches=10_000
    )
    if await apps.get(db, app) is None:
        await apps.put(db, tenant, app, None, clock)
    domain = await domain_store.attach(db, tenant, host, app, policy, clock)
    return await walk(db, domain, PATHS[status], clock)


async def walk(
    db: Database, domain: Domain, path: Sequence[Status], clock: Callable[[], float]
) -> Domain:
    for target in path:
        async with db.write() as conn:
            assert await moves.transition(
                conn, domain, target, reason="test", message="set up by the test", now=clock()
            )
        if target is Status.VERIFIED:
            # What apply_check writes with a passing check: the failure run is over.
            async with db.write() as conn:
                await conn.execute(
                    "UPDATE domains SET failing_since = NULL, failure_count = 0 WHERE id = ?",
                    (domain.id,),
                )
        domain = await domain_store.get_by_id(db, domain.id)
    return domain


@dataclass(frozen=True, slots=True)
class Issuer:
    key: ec.EllipticCurvePrivateKey
    name: x509.Name
    cert: x509.Certificate


def make_issuer(common_name: str | None, organization: str | None = None) -> Issuer:
    attributes = []
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if common_name:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    if not attributes:
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, "ZZ"))
    name = x509.Name(attributes)
    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650 * 3))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issuer(key=key, name=name, cert=cert)


def make_leaf_pem(
    issuer: Issuer, names: Sequence[str], not_before: float, not_after: float
) -> bytes:
    """A leaf for `names`, followed by its issuer, as Caddy stores a chain."""
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.fromtimestamp(not_before, dt.UTC))
        .not_valid_after(dt.datetime.fromtimestamp(not_after, dt.UTC))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=True)
        .sign(issuer.key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return leaf.public_bytes(pem) + issuer.cert.public_bytes(pem)


def store_cert(storage: Path, issuer_key: str, name: str, data: bytes) -> Path:
    directory = storage / "certificates" / issuer_key / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.key").write_bytes(b"-----BEGIN EC PRIVATE KEY-----\nnot used\n")
    (directory / f"{name}.json").write_text(f'{{"sans": ["{name}"]}}')
    path = directory / f"{name}.crt"
    path.write_bytes(data)
    return path


SECRET = "test-webhook-secret-0123456789"


@dataclass(slots=True)
class Received:
    event_id: str
    body: dict[str, object]
    signed: bool
    answered: int
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """A webhook endpoint on 127.0.0.1 that checks signatures and can refuse the first attempts.

    Signatures are checked as a receiver would check them: by the `standardwebhooks` library,
    given `secret` as its users give it (a `whsec_…` string, or the raw bytes of any other)."""

    def __init__(self, secret: str | bytes = SECRET.encode()) -> None:
        self._webhook = Webhook(secret)
        self.requests: list[Received] = []
        self.fail_first = 0  # answer 500 to this many attempts of each event id
        self.failing = False  # answer 500 to everything while set
        self.url = ""
        self._runner: web.AppRunner | None = None

    def accepted(self) -> list[Received]:
        return [r for r in self.requests if r.answered == 200]

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = dict(request.headers)
        try:
            self._webhook.verify(raw, headers)
            signed = True
        except WebhookVerificationError:
            signed = False
        body = json.loads(raw)
        event_id = request.headers.get("webhook-id", "")
        assert body["id"] == event_id == request.headers.get("X-Domaingate-Event-Id")
        tries = sum(1 for r in self.requests if r.event_id == event_id)
        status = 500 if self.failing or tries < self.fail_first or not signed else 200
        self.requests.append(Received(event_id, body, signed, status, raw, headers))
        return web.Response(status=status, text="ok" if status == 200 else "try again")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hooks"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver()
    await hooks.start()
    try:
        yield hooks
    finally:
        await hooks.close()


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[str]:
    """`reconciler.daemon.run()` on `settings` (a 5 s lease) until the block ends; yields the base
    URL of its metrics listener once that answers."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop, tuning=Tuning(lease_ttl=5)))
    base = f"http://{settings.reconciler_listen}"
    try:
        async with aiohttp.ClientSession() as session:

            async def listening() -> bool:
                if task.done():
                    task.result()  # it stopped: say why
                try:
                    async with session.get(f"{base}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await await_until(listening, timeout=10, what="the reconciler's /healthz")
        yield base
    finally:
        stop.set()
        await task
