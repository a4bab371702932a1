"""Benchmark 4: a full DNS check pass against knot vs a bare dnspython client, same queries.

`python -m bench.dnsbench MODE PORT N [DB] [POLL]` prints one JSON line:
- `bare`: per domain the same seven queries DnsChecker.check sends for a CNAME subdomain
  (A and AAAA of the name, NS of the registrable domain, CAA of the name, of the CNAME target the
  name's CAA lookup follows, and of each parent), all at once, with `CHECK_CONCURRENCY` (50)
  domains in flight; plain `dns.asyncquery.udp`.
- `checker`: `DnsChecker.check` over the same domains, same concurrency (no database).
- `schedule`: the real `DnsSchedule` over a database whose N domains are due, polled every POLL s
  (the daemon polls every 1 s); checks and writes results like the reconciler does.
- `schedule-canned`: the same, with every check answered by one canned real report: the
  schedule's database path alone, without DNS.
- `count`: `checker` over N domains counting the queries sent (patched udp_with_fallback).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype

from domaingate.dns.checker import DnsChecker, Expectation
from domaingate.dns.findings import CheckReport
from domaingate.hostnames import Kind
from domaingate.settings import Listen, Settings
from domaingate.store.backends import open_database
from domaingate.targets import SqliteFile
from reconciler.schedule import Checker, DnsSchedule

HOST = "127.0.0.1"
ZONE = "bench.test"
CONCURRENCY = 50
TARGET = "web.apps.localhost"


def name(i: int) -> str:
    return f"r{i}.{ZONE}"


def zones(n: int) -> dict[str, str]:
    """The test zone with n CNAMEs, and the platform zone their target lives in."""
    return {
        ZONE: "".join(f"r{i} CNAME {TARGET}.\n" for i in range(1, n + 1)),
        "apps.localhost": "web A 127.0.0.1\n",
    }


def expectation(i: int) -> Expectation:
    return Expectation(
        hostname=name(i),
        kind=Kind.SUBDOMAIN,
        cname_target=TARGET,
        txt_name=f"_domaingate.{name(i)}",
        txt_value=f"dg_{i}",
        require_txt=False,
        edge_ipv4=(),
        edge_ipv6=(),
    )


async def _bounded(n: int, one: Any) -> list[Any]:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def guarded(i: int) -> Any:
        async with semaphore:
            return await one(i)

    return await asyncio.gather(*(guarded(i) for i in range(1, n + 1)))


async def bare(port: int, n: int) -> dict[str, Any]:
    async def query(qname: str, rdtype: str) -> bool:
        message = dns.message.make_query(qname, rdtype, use_edns=0, payload=1232)
        response = await dns.asyncquery.udp(message, HOST, port=port, timeout=5)
        return response.rcode() == dns.rcode.NOERROR

    async def one(i: int) -> bool:
        host = name(i)
        results = await asyncio.gather(
            query(host, "A"),
            query(host, "AAAA"),
            query(ZONE, "NS"),
            query(host, "CAA"),
            query(ZONE, "CAA"),
            query("test", "CAA"),
            # The CAA lookup at the name meets its CNAME and follows it to the target.
            query(TARGET, "CAA"),
        )
        return all(results)

    started = time.perf_counter()
    ok = await _bounded(n, one)
    return {"seconds": time.perf_counter() - started, "ok": sum(ok), "queries": 7 * n}


async def checker(port: int, n: int) -> dict[str, Any]:
    check = DnsChecker([Listen(HOST, port)], allowed_cas=["letsencrypt.org"], timeout=5.0)

    async def one(i: int) -> bool:
        report = await check.check(expectation(i))
        return all(f.ok for f in report.findings)

    started = time.perf_counter()
    ok = await _bounded(n, one)
    return {"seconds": time.perf_counter() - started, "ok": sum(ok)}


async def count(port: int, n: int) -> dict[str, Any]:
    sent: dict[str, int] = {}
    real = dns.asyncquery.udp_with_fallback

    async def counting(q: dns.message.Message, *args: Any, **kwargs: Any) -> Any:
        rdtype = dns.rdatatype.to_text(q.question[0].rdtype)
        sent[rdtype] = sent.get(rdtype, 0) + 1
        return await real(q, *args, **kwargs)

    dns.asyncquery.udp_with_fallback = counting
    try:
        result = await checker(port, n)
    finally:
        dns.asyncquery.udp_with_fallback = real
    result["per_domain"] = {k: v / n for k, v in sorted(sent.items())}
    return result


class _Canned:
    """A checker answering every domain with one real report (renamed): the write path alone."""

    def __init__(self, report: CheckReport) -> None:
        self._report = report

    async def check(self, expectation: Expectation) -> CheckReport:
        return dataclasses.replace(self._report, hostname=expectation.hostname)


async def schedule(
    port: int, n: int, db_path: Path, poll: float, limit: float, *, canned: bool = False
) -> dict[str, Any]:
    settings = Settings(db=SqliteFile(db_path), resolvers=(Listen(HOST, port),))
    real = DnsChecker.from_settings(settings)
    checker: Checker = _Canned(await real.check(expectation(1))) if canned else real
    db = await open_database(SqliteFile(db_path))
    try:
        sched = DnsSchedule(db, settings, checker, time.time)
        started = time.perf_counter()
        while sched.checks_run < n and time.perf_counter() - started < limit:
            await sched.poll()
            await asyncio.sleep(poll)
        elapsed = time.perf_counter() - started
        done = sched.checks_run
        await sched.close(grace=10)
        async with db.reader.execute(
            "SELECT count(*) FROM domains"
            " WHERE status = 'verified' AND hostname LIKE 'r%.bench.test'"
        ) as cursor:
            row = await cursor.fetchone()
        verified = int(row[0]) if row else 0
    finally:
        await db.close()
    return {"seconds": elapsed, "checks": done, "verified": verified, "rate": done / elapsed}


def main() -> None:
    mode, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if mode == "bare":
        result = asyncio.run(bare(port, n))
    elif mode == "checker":
        result = asyncio.run(checker(port, n))
    elif mode == "count":
        result = asyncio.run(count(port, n))
    elif mode in ("schedule", "schedule-canned"):
        poll = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
        limit = float(sys.argv[6]) if len(sys.argv) > 6 else 60.0
        canned = mode == "schedule-canned"
        result = asyncio.run(schedule(port, n, Path(sys.argv[4]), poll, limit, canned=canned))
    else:
        raise SystemExit(f"unknown mode {mode}")
    if "seconds" in result and "rate" not in result:
        result["rate"] = n / result["seconds"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
