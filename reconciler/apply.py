"""Carry out a certificate plan: one write transaction per domain, moves through `transition()`.

Each change is written only if the domain still has the status the plan saw (compare-and-set), so a
domain moved meanwhile by the API or a DNS check is left alone and simply planned again at the next
scan. A transaction per domain keeps one bad row from holding back the others.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.errors import InvalidState
from gateway.store import domains as domain_store
from gateway.store import reconcile as store
from gateway.store.database import Clock, Database
from reconciler.plan import CertChange

log = logging.getLogger(__name__)


@dataclass(slots=True, kw_only=True)
class ApplyResult:
    applied: int = 0
    moves: int = 0
    skipped: int = 0


async def apply_cert_changes(
    db: Database, changes: Iterable[CertChange], clock: Clock
) -> ApplyResult:
    result = ApplyResult()
    for change in changes:
        if await apply_one(db, change, clock):
            result.applied += 1
            result.moves += len(change.moves)
        else:
            result.skipped += 1
    return result


async def apply_one(db: Database, change: CertChange, clock: Clock) -> bool:
    """Write one change; False if the domain changed status since it was planned."""
    domain = change.domain
    async with db.write() as conn:
        now = clock()
        if not await store.set_cert(
            conn, domain, expires_at=change.expires_at, issuer=change.issuer, now=now
        ):
            log.info(
                "%s changed status during the certificate scan; planned again next scan",
                domain.hostname,
            )
            return False
        current = domain
        for move in change.moves:
            moved = await domain_store.transition(
                conn, current, move.target, reason=move.reason, message=move.message, now=now
            )
            if not moved:
                # Unreachable while we hold the write lock after the compare-and-set above; raising
                # rolls the certificate fields back with it.
                raise InvalidState(f"{domain.hostname} changed status during the certificate scan")
            log.info("%s: %s → %s (%s)", domain.hostname, move.source, move.target, move.reason)
            current = dataclasses.replace(current, status=move.target)
    return True
