"""Caddy's storage failing under a running reconciler (`domaingate reconcile`, a real process):
directories and files it cannot read, and certificates caught half-written.

Unreadable is made real with permissions. The tests run as root, whose CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH ignore them, so the reconciler is started through `setpriv` without those two
capabilities (from its bounding, inheritable and ambient sets): mode 000 then stops it as it stops
any unprivileged reader, and the test checks the capabilities the process really has. Half-written
is what Caddy leaves while it rewrites a certificate in place (certmagic's file storage truncates
and writes): the file empty, then cut short, then whole.

Under every fault the reconciler keeps running and moves nothing (an active domain stays active,
its certificate fields as they were), each fault shows in its log and in its metrics, and once the
storage reads well again the scan picks up what changed meanwhile.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from domaingate.states import Status
from domaingate.store import tenants
from domaingate.store.backends import open_database
from tests.conftest import sample, target
from tests.reconciler.conftest import DAY, attach, make_issuer, make_leaf_pem, store_cert
from tests.support.domaingate import Domaingate
from tests.support.wait import wait_until

# A real reconciler process, scanning for seconds.
pytestmark = pytest.mark.slow

ISSUER_KEY = "acme-v02.api.letsencrypt.org-directory"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
WITHOUT_DAC = [
    SETPRIV,
    "--inh-caps=-all",
    "--ambient-caps=-all",
    "--bounding-set=-dac_override,-dac_read_search",
]
SCANS = "domaingate_reconciler_job_runs_total"
ERRORS = "domaingate_reconciler_cert_scan_errors_total"


ISSUER = make_issuer("R11")


async def _attach(db: Path, domains: dict[str, Status]) -> None:
    async with await open_database(target(db)) as database:
        tenant, _token = await tenants.create(database, "acme", time.time)
        for name, status in domains.items():
            # Nothing due for DNS while the test runs: the certificate scan alone moves states.
            await attach(database, tenant, name, time.time, status=status, first_check_in=3600)


def set_up(dg: Domaingate, domains: dict[str, Status]) -> float:
    """The domains in `dg`'s database, in these statuses; returns the time."""
    asyncio.run(_attach(dg.db, domains))
    return time.time()


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    root = tmp_path / "caddy"
    (root / "certificates" / ISSUER_KEY).mkdir(parents=True)
    return root


@pytest.fixture
def reconciler(tmp_path: Path, storage: Path) -> Iterator[Domaingate]:
    """The daemons' harness with the database at tmp_path; only the reconciler is started (by
    the test), scanning every 0.2 s."""
    dg = Domaingate(
        tmp_path / "dg",
        {
            "DB": str(tmp_path / "domaingate.db"),
            "CADDY_STORAGE": str(storage),
            "CERT_SCAN_INTERVAL": "0.2",
            "RESOLVERS": "127.0.0.1:9",
            "PLATFORM_ZONE": "apps.example.net",
            "LOG_LEVEL": "INFO",
        },
    )
    try:
        yield dg
    finally:
        dg.stop()


def metric(dg: Domaingate, name: str, **labels: str) -> float:
    return sample(dg.metrics("reconciler"), name, **labels)


def scans(dg: Domaingate) -> float:
    return metric(dg, SCANS, job="certs", result="ok")


def after_two_scans(dg: Domaingate) -> None:
    """Return once two more scans have finished: the second began after this call."""
    target = scans(dg) + 2
    wait_until(
        lambda: scans(dg) >= target,
        timeout=10,
        what="two more certificate scans",
        alive=dg.reconciler.check_alive,
    )


def row(dg: Domaingate, name: str) -> tuple[str, int | None]:
    """Its status and when its recorded certificate ends (whole seconds, as in a certificate)."""
    found = dg.db_row(name)
    assert found is not None
    ends = found["cert_expires_at"]
    return found["status"], None if ends is None else int(ends)


def put(path: Path, data: bytes) -> None:
    """Make `data` the file's content in one step, so that every scan meets exactly one of the
    states a rewrite in place goes through (written directly, a scan could meet the empty file
    on the way to the cut-short one, and count and log it on its own)."""
    staged = path.with_name(path.name + ".staged")
    staged.write_bytes(data)
    staged.replace(path)


def capabilities(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no CapEff for {pid}")


@pytest.mark.root
def test_unreadable_storage_moves_nothing_and_is_reported(
    reconciler: Domaingate, storage: Path
) -> None:
    dg = reconciler
    now = set_up(dg, {"live.acme.test": Status.ACTIVE, "fresh.acme.test": Status.VERIFIED})
    live_ends = now + 60 * DAY
    store_cert(
        storage,
        ISSUER_KEY,
        "live.acme.test",
        make_leaf_pem(ISSUER, ["live.acme.test"], now - DAY, live_ends),
    )
    dg.reconciler.argv[:0] = WITHOUT_DAC
    dg.start_reconciler()
    assert dg.reconciler.pid is not None
    caps = capabilities(dg.reconciler.pid)
    assert not caps & (1 << CAP_DAC_OVERRIDE | 1 << CAP_DAC_READ_SEARCH), hex(caps)

    wait_until(
        lambda: row(dg, "live.acme.test")[1] is not None,
        timeout=10,
        what="the first scan to record live's certificate",
        alive=dg.reconciler.check_alive,
    )
    assert row(dg, "live.acme.test") == ("active", int(live_ends))
    moves = dg.event_types("live.acme.test")
    certificates = storage / "certificates"
    issuer_dir = certificates / ISSUER_KEY
    name_dir = issuer_dir / "live.acme.test"

    def hidden(path: Path, shown: Path | None = None) -> None:
        """Take read access away from `path` (then give it back to `shown`); return once the
        scan has failed on it and scanned twice more."""
        before = metric(dg, ERRORS, cause="unreadable")
        path.chmod(0)
        if shown is not None:
            shown.chmod(0o700)
        wait_until(
            lambda: metric(dg, ERRORS, cause="unreadable") > before,
            timeout=10,
            what=f"the scan to fail on {path}",
            alive=dg.reconciler.check_alive,
        )
        after_two_scans(dg)

    try:
        # The issuer's directory: which names it holds is unknown. A certificate Caddy stores
        # for `fresh` meanwhile stays out of sight.
        hidden(issuer_dir)
        store_cert(
            storage,
            ISSUER_KEY,
            "fresh.acme.test",
            make_leaf_pem(ISSUER, ["fresh.acme.test"], now - DAY, now + 80 * DAY),
        )
        after_two_scans(dg)
        assert row(dg, "live.acme.test") == ("active", int(live_ends))
        assert row(dg, "fresh.acme.test") == ("verified", None)
        # The whole certificates/ directory.
        hidden(certificates, shown=issuer_dir)
        assert row(dg, "live.acme.test") == ("active", int(live_ends))
        # One name's directory (its .crt cannot even be stat'ed); the rest reads again, and
        # `fresh` gets its certificate at last.
        hidden(name_dir, shown=certificates)
        wait_until(
            lambda: row(dg, "fresh.acme.test")[0] == "active",
            timeout=10,
            what="fresh to become active once its issuer directory reads again",
            alive=dg.reconciler.check_alive,
        )
        assert row(dg, "live.acme.test") == ("active", int(live_ends))
    finally:
        for path in (certificates, issuer_dir, name_dir):
            path.chmod(0o700)

    after_two_scans(dg)
    assert row(dg, "live.acme.test") == ("active", int(live_ends))
    assert dg.event_types("live.acme.test") == moves  # never demoted, not even for a moment
    assert dg.event_types("fresh.acme.test")[-1] == "domain.active"
    assert dg.reconciler.running
    log = dg.reconciler.log_text()
    for line in (
        f"cannot list {issuer_dir}: Permission denied",
        f"cannot list {certificates}: Permission denied",
        f"cannot stat {name_dir}/live.acme.test.crt: Permission denied",
        f"{name_dir}/live.acme.test.crt can be read again",
    ):
        assert log.count(line) == 1, line  # logged when it starts failing, not at every scan
    assert "Traceback" not in log
    assert metric(dg, ERRORS, cause="unreadable") >= 3
    assert metric(dg, ERRORS, cause="corrupt") == 0
    assert metric(dg, SCANS, job="certs", result="failed") == 0


def test_certificates_caught_half_written_move_nothing(
    reconciler: Domaingate, storage: Path
) -> None:
    dg = reconciler
    now = set_up(dg, {"live.acme.test": Status.ACTIVE, "soon.acme.test": Status.EXPIRING})
    first = {
        "live.acme.test": make_leaf_pem(ISSUER, ["live.acme.test"], now - DAY, now + 60 * DAY),
        "soon.acme.test": make_leaf_pem(ISSUER, ["soon.acme.test"], now - 80 * DAY, now + 5 * DAY),
    }
    renewed = {name: make_leaf_pem(ISSUER, [name], now, now + 90 * DAY) for name in first}
    paths = {name: store_cert(storage, ISSUER_KEY, name, pem) for name, pem in first.items()}
    dg.start_reconciler()
    wait_until(
        lambda: all(row(dg, name)[1] is not None for name in first),
        timeout=10,
        what="the first scan to record both certificates",
        alive=dg.reconciler.check_alive,
    )
    assert row(dg, "live.acme.test") == ("active", int(now + 60 * DAY))
    assert row(dg, "soon.acme.test") == ("expiring", int(now + 5 * DAY))
    moves = {name: dg.event_types(name) for name in first}

    # Caddy renews both, writing in place: one is caught just truncated, the other half written.
    put(paths["soon.acme.test"], b"")
    whole = renewed["live.acme.test"]
    put(paths["live.acme.test"], whole[: whole.index(b"-----END") // 2])  # inside the leaf
    wait_until(
        lambda: metric(dg, ERRORS, cause="corrupt") >= 2,
        timeout=10,
        what="the scan to meet both broken files",
        alive=dg.reconciler.check_alive,
    )
    after_two_scans(dg)
    assert row(dg, "live.acme.test") == ("active", int(now + 60 * DAY))
    assert row(dg, "soon.acme.test") == ("expiring", int(now + 5 * DAY))
    assert {name: dg.event_types(name) for name in first} == moves
    assert metric(dg, ERRORS, cause="corrupt") == 2  # once per version of each file

    # The writes complete: the renewed certificates count, `soon` is active again.
    for name, pem in renewed.items():
        put(paths[name], pem)
    wait_until(
        lambda: (
            row(dg, "soon.acme.test")[0] == "active"
            and row(dg, "live.acme.test")[1] == int(now + 90 * DAY)
        ),
        timeout=10,
        what="the renewed certificates to be recorded",
        alive=dg.reconciler.check_alive,
    )
    assert row(dg, "live.acme.test") == ("active", int(now + 90 * DAY))
    assert dg.event_types("live.acme.test") == moves["live.acme.test"]
    assert dg.event_types("soon.acme.test") == [*moves["soon.acme.test"], "domain.active"]
    assert dg.reconciler.running
    log = dg.reconciler.log_text()
    for name in first:
        assert log.count(f"{paths[name]}: the certificate is empty or cut short") == 1, name
    assert "Traceback" not in log
    assert metric(dg, ERRORS, cause="unreadable") == 0
