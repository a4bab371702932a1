"""Every edge's certificate storage: what each storage holds (its reconciler reports it), which
edges mount which storage, and each storage's word that a removed domain's certificate is gone.

Rows are keyed by the storage's identity, not by the edge: edges sharing one storage report it
once (`reconciler.certificates.report`). A storage counts while it was scanned within
`stale_after` seconds; one that stopped reporting (its edge dead or decommissioned) stops holding
domains active after that, and its loss is planned like any other, through the mass-loss guard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from domaingate.lifecycle.renewal import CertFact, RenewalWindow
from domaingate.store import in_lists
from domaingate.store.abc import Connection, Database, Row
from domaingate.store.scopes import Scope

# What a storage holds for one name: its certificate, or None when the scan could not judge it.
Held = CertFact | None
# Rows written per statement batch: a first report of a large storage stays a few transactions.
REPORT_BATCH = 2000
# EDGE_STALE_AFTER's default: a storage not scanned for a day stops counting.
STALE_AFTER = 86400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetCerts:
    """The union of the storages still reporting: the latest certificate per name, the names no
    storage holds a certificate for but one could not judge, and how many storages count."""

    certs: Mapping[str, CertFact]
    unknown: frozenset[str]
    storages: int


def _fact(row: Row) -> CertFact:
    """A row read with _COLUMNS whose name is known."""
    name, issuer, key, before, after, start, end = tuple(row)[1:]
    window = None
    if start is not None and end is not None:
        window = RenewalWindow(start=float(start), end=float(end))
    return CertFact(
        name=str(name),
        not_before=float(before),
        not_after=float(after),
        issuer=str(issuer),
        issuer_key=str(key),
        # Relative to whichever storage holds it: the planner reads no file.
        path=Path("certificates") / str(key) / str(name) / f"{name}.crt",
        renewal_window=window,
    )


_COLUMNS = "unknown, hostname, issuer, issuer_key, not_before, not_after, window_start, window_end"


async def storage_rows(db: Database, storage: str) -> dict[str, Held]:
    """What `storage` reported last, per name."""
    async with db.reader.execute(
        f"SELECT {_COLUMNS} FROM edge_certificates WHERE storage = ?", (storage,)
    ) as cursor:
        return {str(row[1]): (None if row[0] else _fact(row)) async for row in cursor}


def _values(storage: str, name: str, held: Held, now: float) -> tuple[object, ...]:
    if held is None:
        return (storage, name, 1, None, None, None, None, None, None, now)
    window = held.renewal_window
    return (
        storage,
        name,
        0,
        held.issuer,
        held.issuer_key,
        held.not_before,
        held.not_after,
        window.start if window else None,
        window.end if window else None,
        now,
    )


async def report(
    db: Database,
    storage: str,
    edge: str,
    now: float,
    *,
    changed: Mapping[str, Held],
    gone: Iterable[str],
) -> None:
    """Write a complete scan of `storage` by `edge`: the names whose holding changed, the names
    it holds no more, then the scan's time (last, so a report cut short never reads as fresh)."""
    # Each storage has one reporter at a time (its lease), and its rows are its own: they lock
    # the storage's name, never the fleet.
    scope = Scope.row("cert_storages", storage)
    items = list(changed.items())
    for start in range(0, len(items), REPORT_BATCH):
        async with db.write(scope) as conn:
            await conn.executemany(
                "INSERT INTO edge_certificates (storage, hostname, unknown, issuer, issuer_key,"
                " not_before, not_after, window_start, window_end, seen_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (storage, hostname) DO UPDATE"
                " SET unknown = excluded.unknown, issuer = excluded.issuer,"
                " issuer_key = excluded.issuer_key, not_before = excluded.not_before,"
                " not_after = excluded.not_after, window_start = excluded.window_start,"
                " window_end = excluded.window_end, seen_at = excluded.seen_at",
                [_values(storage, n, h, now) for n, h in items[start : start + REPORT_BATCH]],
            )
    for chunk in in_lists.chunks(gone):
        async with db.write(scope) as conn:
            await conn.execute(
                f"DELETE FROM edge_certificates WHERE storage = ? AND hostname IN"
                f" ({in_lists.marks(chunk)})",
                (storage, *chunk),
            )
    async with db.write(scope) as conn:
        await conn.execute(
            "INSERT INTO cert_storages (id, scanned_at, scanned_by) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET scanned_at = excluded.scanned_at,"
            " scanned_by = excluded.scanned_by",
            (storage, now, edge),
        )


async def edge_seen(db: Database, edge: str, storage: str, now: float) -> None:
    """`edge` is alive and mounts `storage`."""
    async with db.write(Scope.row("edges", edge)) as conn:
        await conn.execute(
            "INSERT INTO edges (name, storage, seen_at) VALUES (?, ?, ?) ON CONFLICT (name)"
            " DO UPDATE SET storage = excluded.storage, seen_at = excluded.seen_at",
            (edge, storage, now),
        )


async def fleet_certs(db: Database, *, since: float) -> FleetCerts:
    """The union of what the storages scanned since `since` hold."""
    certs: dict[str, CertFact] = {}
    unknown: set[str] = set()
    async with db.reader.execute(
        f"SELECT {_COLUMNS} FROM edge_certificates c JOIN cert_storages s ON s.id = c.storage"
        " WHERE s.scanned_at >= ?",
        (since,),
    ) as cursor:
        async for row in cursor:
            name = str(row[1])
            if row[0]:
                unknown.add(name)
                continue
            fact = _fact(row)
            known = certs.get(name)
            if known is None or fact.not_after > known.not_after:
                certs[name] = fact
    storages = await db.read_number(
        "SELECT count(*) FROM cert_storages WHERE scanned_at >= ?", (since,)
    )
    # A certificate on any edge decides; a name is unknown only when no storage holds one.
    return FleetCerts(certs=certs, unknown=frozenset(unknown - certs.keys()), storages=storages)


async def edges_holding(
    db: Database, hostnames: Iterable[str], *, since: float
) -> dict[str, list[str]]:
    """The edges (seen since `since`) whose storage (scanned since `since`) holds a certificate
    for each of `hostnames`, by name; a name no edge holds is left out."""
    held: dict[str, list[str]] = {}
    for chunk in in_lists.chunks(hostnames):
        async with db.reader.execute(
            "SELECT c.hostname, e.name FROM edge_certificates c"
            " JOIN cert_storages s ON s.id = c.storage JOIN edges e ON e.storage = c.storage"
            f" WHERE c.hostname IN ({in_lists.marks(chunk)}) AND c.unknown = 0"
            " AND s.scanned_at >= ? AND e.seen_at >= ? ORDER BY c.hostname, e.name",
            (*chunk, since, since),
        ) as cursor:
            async for row in cursor:
                held.setdefault(str(row[0]), []).append(str(row[1]))
    return held


async def drop_certificate(
    conn: Connection, storage: str, hostname: str, domain_id: int, now: float
) -> None:
    """`storage` holds no certificate for `hostname` any more (its edge deleted it, or found none)
    and says so for the removed domain `domain_id`."""
    await conn.execute(
        "DELETE FROM edge_certificates WHERE storage = ? AND hostname = ?", (storage, hostname)
    )
    await conn.execute(
        "INSERT INTO edge_cleanups (storage, domain_id, cleaned_at) VALUES (?, ?, ?)"
        " ON CONFLICT (storage, domain_id) DO NOTHING",
        (storage, domain_id, now),
    )


async def cleaned_everywhere(
    conn: Connection, domain_id: int, hostname: str, *, since: float
) -> bool:
    """Whether every storage scanned since `since` has said the removed domain's certificate is
    gone from it, and none holds one for `hostname` (re-issued meanwhile, or not deleted)."""
    async with conn.execute(
        "SELECT count(*) FROM cert_storages s WHERE s.scanned_at >= ? AND (NOT EXISTS"
        " (SELECT 1 FROM edge_cleanups k WHERE k.storage = s.id AND k.domain_id = ?) OR EXISTS"
        " (SELECT 1 FROM edge_certificates c WHERE c.storage = s.id AND c.hostname = ?))",
        (since, domain_id, hostname),
    ) as cursor:
        row = await cursor.fetchone()
    return row is not None and int(row[0]) == 0


async def said_cleaned(conn: Connection, storage: str, domain_id: int, hostname: str) -> bool:
    """Whether `storage` has said the removed domain's certificate is gone from it, and has not
    reported one for `hostname` since."""
    async with conn.execute(
        "SELECT 1 FROM edge_cleanups WHERE storage = ? AND domain_id = ? AND NOT EXISTS"
        " (SELECT 1 FROM edge_certificates WHERE storage = ? AND hostname = ?)",
        (storage, domain_id, storage, hostname),
    ) as cursor:
        return await cursor.fetchone() is not None


async def forget_cleanups(conn: Connection, domain_id: int) -> None:
    """The domain is cleaned: the storages' words about it are no longer needed."""
    await conn.execute("DELETE FROM edge_cleanups WHERE domain_id = ?", (domain_id,))


async def forget_storage(db: Database, storage: str) -> None:
    """Drop every row of `storage`: an edge that reported its storage as absent (no root yet)
    and now reports the storage's own identity. An absent storage held nothing, and left to go
    stale it would hold removals waiting a day for its word that they are cleaned."""
    async with db.write(Scope.row("cert_storages", storage)) as conn:
        for table, column in (
            ("edge_certificates", "storage"),
            ("edge_cleanups", "storage"),
            ("cert_storages", "id"),
        ):
            await conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (storage,))
