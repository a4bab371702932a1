"""The benchmark database: N domains (90% in allowed statuses) built fast.

Schema from the project's own migrations (`open_database`), then one executemany in one
transaction. The two `seq` triggers run `SELECT max(seq)` and an UPDATE per row, so they are
dropped for the bulk load and recreated as the migration defines them; `seq` is set to the row id
directly, which is what the triggers would have produced (a strictly increasing sequence).
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sqlite3
import time
from pathlib import Path

from domaingate.store.backends import open_database
from domaingate.store.migrations import migrations
from domaingate.targets import SqliteFile

ALLOWED = ("verified", "active", "expiring")
# Domains the reconciler benchmark checks: names in the knot zone, due, pending.
DNS_ZONE = "bench.test"


def hostname(i: int) -> str:
    return f"shop{i}.tenant{i % 50_000}.example.com"


def dns_hostname(i: int) -> str:
    return f"r{i}.{DNS_ZONE}"


def status_of(i: int) -> str:
    # 90% allowed, spread over the allowed statuses; the rest pending/failed.
    bucket = i % 10
    if bucket == 9:
        return "pending" if i % 20 == 9 else "failed"
    return ALLOWED[bucket % 3]


# Dropped for the load and made again after it; the others (009's counts) keep counting.
_SEQ_TRIGGERS = ("domains_seq_on_insert", "domains_seq_on_update")


def _triggers(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'domains'"
        f" AND name IN ({', '.join('?' for _ in _SEQ_TRIGGERS)})",
        _SEQ_TRIGGERS,
    ).fetchall()
    return [str(row[0]) for row in rows]


def build(path: Path, count: int, dns_due: int) -> float:
    """Create the database at `path`; returns the seconds it took."""
    started = time.monotonic()
    path.unlink(missing_ok=True)
    asyncio.run(_migrate(path))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        triggers = _triggers(conn)
        conn.execute("BEGIN")
        for name in _SEQ_TRIGGERS:
            conn.execute(f"DROP TRIGGER {name}")
        conn.execute(
            "INSERT INTO tenants (id, name, token_hash, created_at) VALUES (1, 'bench', ?, 0)",
            (b"\x00" * 32,),
        )
        # The tenant's app, registered before its domains (so its trigger has no rows to touch):
        # the gate routes only domains whose app is their tenant's.
        conn.execute(
            "INSERT INTO apps (name, tenant_id, upstream, created_at, updated_at)"
            " VALUES ('web', 1, NULL, 0, 0)"
        )
        now = time.time()
        far = now + 10 * 86400

        def rows() -> object:
            for i in range(1, count + 1):
                if i <= dns_due:
                    name, status, due = dns_hostname(i), "pending", 0.0
                else:
                    name, status, due = hostname(i), status_of(i), far + i
                yield (i, name, 1, "web", status, "subdomain", "cname", f"dg_{i}", now, now, due, i)

        conn.executemany(
            "INSERT INTO domains (id, hostname, tenant_id, app, status, kind, method, txt_token,"
            " created_at, updated_at, next_check_at, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            rows(),  # type: ignore[arg-type]
        )
        for sql in triggers:
            conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.monotonic() - started


async def _migrate(path: Path) -> None:
    db = await open_database(SqliteFile(path))
    await db.close()


def cached(path: Path, count: int, dns_due: int) -> tuple[Path, float | None]:
    """A pristine copy of the database for (count, dns_due) at `path`; build it once."""
    # Named for the schema too: a copy built before a migration would lack what it adds.
    pristine = path.with_name(f"pristine-{count}-{dns_due}-v{len(migrations())}.db")
    took = None
    if not pristine.exists():
        # Built under another name and renamed once complete: a build cut short (an error, ^C)
        # must not be taken for the pristine copy by the next run.
        partial = pristine.with_name(f"{pristine.name}.partial")
        took = build(partial, count, dns_due)
        partial.replace(pristine)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(pristine, path)
    return path, took


def allowed_names(count: int, dns_due: int) -> list[str]:
    return [hostname(i) for i in range(dns_due + 1, count + 1) if status_of(i) in ALLOWED]


def write_paths(path: Path, allowed: list[str], n: int = 20_000, seed: int = 1) -> None:
    """n request paths: half allowed names, half random unknown names."""
    rng = random.Random(seed)
    lines = []
    for k in range(n):
        if k % 2 == 0:
            name = rng.choice(allowed)
        else:
            name = f"{rng.getrandbits(40):x}.scan{rng.randrange(10**6)}.example.net"
        lines.append(f"/tls-ask?domain={name}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def pending_ids(count: int, dns_due: int, n: int) -> list[tuple[int, str]]:
    """n pending (not allowed) domains: (id, hostname), for the freshness benchmark."""
    found = []
    for i in range(dns_due + 1, count + 1):
        if status_of(i) == "pending":
            found.append((i, hostname(i)))
            if len(found) == n:
                break
    return found
