"""Carry out a certificate plan: many changes to a write transaction, each a compare-and-set.

A change is written only if its domain still has the status the plan saw, so a domain moved
meanwhile by the API or a DNS check is left alone and simply planned again at the next scan. The
statuses are read inside the write transaction (which holds the lock of each of the batch's
names), so no other writer can move a domain between that read and these writes. Batches keep the
first scan of a large storage from costing a transaction (and an fsync) per domain, while each
batch stays short enough not to hold up the API's writes for long.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from domaingate.lifecycle.certificates import CertChange
from domaingate.store import certificates as cert_store
from domaingate.store import moves, scopes
from domaingate.store.abc import Connection, Database
from domaingate.times import Clock

log = logging.getLogger(__name__)

BATCH = 500


@dataclass(slots=True, kw_only=True)
class ApplyResult:
    applied: int = 0
    moves: int = 0
    skipped: int = 0


async def apply_cert_changes(
    db: Database, changes: Iterable[CertChange], clock: Clock, *, batch: int = BATCH
) -> ApplyResult:
    result = ApplyResult()
    pending = list(changes)
    for start in range(0, len(pending), batch):
        chunk = pending[start : start + batch]
        async with db.write(*scopes.hostnames(c.domain.hostname for c in chunk)) as conn:
            written = await _write(conn, chunk, clock())
        for change in written:
            for move in change.moves:
                hostname = change.domain.hostname
                log.info("%s: %s → %s (%s)", hostname, move.source, move.target, move.reason)
        result.applied += len(written)
        result.moves += sum(len(change.moves) for change in written)
        result.skipped += len(chunk) - len(written)
    return result


async def _write(conn: Connection, changes: Sequence[CertChange], now: float) -> list[CertChange]:
    async def write_certs(conn: Connection, chosen: list[CertChange]) -> None:
        await cert_store.set_certs(
            conn, [(c.domain, c.expires_at, c.issuer, c.renewal_due_at) for c in chosen], now=now
        )

    written, chosen = await moves.write_batch(
        conn, changes, now=lambda _change: now, write=write_certs
    )
    for change, ok in zip(changes, written, strict=True):
        if not ok:
            log.info(
                "%s changed status during the certificate scan; planned again next scan",
                change.domain.hostname,
            )
    return chosen
