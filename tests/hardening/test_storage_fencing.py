"""A reconciler paused while it holds its storage's lease must not write that storage's report
when it wakes (both backends).

Two edges mount one storage; one reconciler at a time scans, reports and cleans it, by the
storage's lease. Edge A scans it (Caddy is mid-renewal: the certificate is not there for that
instant) and freezes before writing the report. Its lease ends, edge B takes the storage over
and reports it whole. When A wakes, its report (a scan older than B's) would say the certificate
is gone: the domain would lose it in the plan and stay so, since B reports only what changed
since its own report. The storage's writes carry the storage lease's fencing token, and A's is
refused: nothing of it is written, and A stands by for that storage.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store import edges as edge_store
from domaingate.store.abc import Database
from reconciler.certificates.report import STORAGE_LEASE_PREFIX
from tests.conftest import sql
from tests.reconciler.certificates.test_edges import LE, Edges, edges, put
from tests.reconciler.conftest import FakeClock, attach, db, db_target, tenant

__all__ = ["db", "db_target", "edges", "tenant"]  # fixtures, used by name

NAME = "renewing.acme.test"


async def test_a_storage_report_written_after_a_takeover_is_refused(
    db: Database,
    tenant: object,
    clock: FakeClock,
    tmp_path: Path,
    edges: Edges,
    db_target: Path | str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = tmp_path / "shared"
    a = await edges("edge-a", shared)
    b = await edges("edge-b", shared)
    assert a.edge.held() and not b.edge.held()
    domain = await attach(db, tenant, NAME, clock, status=Status.VERIFIED)  # type: ignore[arg-type]
    put(shared, NAME, clock())
    await a.scan_certs()
    assert (await domain_store.get_by_id(db, domain.id)).status is Status.ACTIVE

    # A scans while the certificate is away for an instant, and freezes before reporting.
    directory = shared / "certificates" / LE / NAME
    aside = tmp_path / "aside"
    shutil.move(directory, aside)
    stale = a.edge.scanner.scan()
    shutil.move(aside, directory)
    assert NAME not in stale.certs

    # Its storage lease ends meanwhile; B takes the storage over and reports it.
    assert a.edge.identity is not None
    lease = STORAGE_LEASE_PREFIX + a.edge.identity
    sql(db_target, "UPDATE leases SET expires_at = 0 WHERE name = ?", (lease,))
    await b.edge_duties()
    assert b.edge.held()

    # A wakes and writes the report of its old scan.
    monkeypatch.setattr(a.edge.scanner, "scan", lambda: stale)
    assert await a.edge.report() is None  # refused: it did not report
    rows = await edge_store.storage_rows(db, a.edge.identity)
    assert NAME in rows and rows[NAME] is not None
    [(by,)] = sql(db_target, "SELECT scanned_by FROM cert_storages")
    assert by == "edge-b"
    assert not a.edge.held()  # it knows the storage is another's now

    # The plan (A still holds the reconciler's lease) keeps the domain active.
    monkeypatch.undo()
    await a.scan_certs()
    await b.edge_duties()
    await a.scan_certs()
    assert (await domain_store.get_by_id(db, domain.id)).status is Status.ACTIVE
