"""Benchmark 5: CertScanner over a Caddy storage tree of N certificates.

The tree: `certificates/acme-v02.api.letsencrypt.org-directory/{name}/{name}.crt|.key|.json`, each
leaf naming its directory, all signed with ONE P-256 key (a self-issued "Bench CA") in a process
pool. Built once per N under the work directory and reused.

`python -m bench.certbench STORAGE [RESCANS]` prints one JSON line: the first scan's seconds and
each unchanged rescan's. `python -m bench.certbench job STORAGE DB N`: the reconciler's whole
certificate job (scan, plan, write) over a fresh database of N verified domains named like the
tree's certificates, four runs.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import sqlite3
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from domaingate.store.backends import open_database
from domaingate.targets import SqliteFile

ISSUER_KEY = "acme-v02.api.letsencrypt.org-directory"
_KEY_PEM = b""


def cert_name(i: int) -> str:
    return f"c{i}.certs.example.com"


def _init(key_pem: bytes) -> None:
    global _KEY_PEM
    _KEY_PEM = key_pem


def _make(args: tuple[Path, int, int]) -> int:
    root, start, stop = args
    key = serialization.load_pem_private_key(_KEY_PEM, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench CA")])
    now = datetime.datetime.now(datetime.UTC)
    key_text = b"-----BEGIN EC PRIVATE KEY-----\nbench\n-----END EC PRIVATE KEY-----\n"
    for i in range(start, stop):
        name = cert_name(i)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(i)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=60 + i % 30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        folder = root / name
        folder.mkdir()
        (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(key_text)
        (folder / f"{name}.json").write_text(json.dumps({"sans": [name]}))
    return stop - start


def build(storage: Path, n: int, workers: int = 2) -> float:
    """Create the tree; returns the seconds it took."""
    started = time.monotonic()
    root = storage / "certificates" / ISSUER_KEY
    root.mkdir(parents=True)
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    step = 5000
    jobs = [(root, s, min(s + step, n + 1)) for s in range(1, n + 1, step)]
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(key_pem,)) as pool:
        made = sum(pool.map(_make, jobs))
    if made != n:
        raise RuntimeError(f"made {made} certificates, wanted {n}")
    (storage / "complete").write_text(str(n))
    return time.monotonic() - started


def cached(work: Path, n: int) -> tuple[Path, float | None]:
    storage = work / f"caddy-{n}"
    if (storage / "complete").exists():
        return storage, None
    if storage.exists():
        import shutil

        shutil.rmtree(storage)
    return storage, build(storage, n, workers=os.cpu_count() or 1)


def scan(storage: Path, rescans: int) -> dict[str, Any]:
    from reconciler.certificates.storage import CertScanner

    scanner = CertScanner(storage)
    started = time.perf_counter()
    found = scanner.scan().certs
    first = time.perf_counter() - started
    again = []
    for _ in range(rescans):
        started = time.perf_counter()
        same = scanner.scan().certs
        again.append(time.perf_counter() - started)
        if len(same) != len(found):
            raise RuntimeError("an unchanged rescan found different certificates")
    return {"first": first, "rescans": again, "found": len(found), "parsed": scanner.parsed}


def job_db(path: Path, n: int) -> None:
    """A database of n verified domains named like the tree's certificates."""
    from bench import gatedb

    gatedb.build(path, n, 0)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(
            "UPDATE domains SET hostname = 'c' || id || '.certs.example.com', status = 'verified'"
        )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


async def job(storage: Path, db_path: Path, n: int) -> dict[str, Any]:
    """The reconciler's whole certificate job (scan, plan, write) over n domains, four times:
    the first scan (every domain becomes active), the next (those moves are replanned), a
    steady one, and a steady full plan."""
    from domaingate.settings import Settings
    from reconciler.daemon import Reconciler

    runs = []
    async with await open_database(SqliteFile(db_path)) as db:
        reconciler = Reconciler(Settings(db=SqliteFile(db_path), caddy_storage=storage), db)
        for label in ("first", "after the moves", "steady", "steady, full plan"):
            if label.endswith("full plan"):
                reconciler.certs.scope.full_every = 0.0
            wall, cpu = time.perf_counter(), time.process_time()
            applied = await reconciler.scan_certs()
            scope = reconciler.certs.last_scan
            assert scope is not None
            runs.append(
                {
                    "label": label,
                    "wall": time.perf_counter() - wall,
                    "cpu": time.process_time() - cpu,
                    "full": scope.full,
                    "applied": applied,
                }
            )
    return {"runs": runs}


def main() -> None:
    if sys.argv[1] == "job":
        storage, db_path, n = Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
        job_db(db_path, n)
        print(json.dumps(asyncio.run(job(storage, db_path, n))))
        return
    storage = Path(sys.argv[1])
    rescans = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(json.dumps(scan(storage, rescans)))


if __name__ == "__main__":
    main()
