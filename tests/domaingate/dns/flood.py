"""Many DNS checks at once from one process.

`python -m tests.domaingate.dns.flood CHECKS RESOLVER...`

Checks CHECKS names of 16 labels under acme.test (`*.acme.test` must be a CNAME to
shop.apps.test) against every RESOLVER (host:port) all at once, as the reconciler and concurrent
verifies do, and prints one JSON object: each check's failing codes and messages, and the most
DNS queries that were in flight. test_inflight.py runs it under a low RLIMIT_NOFILE.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence

from domaingate.dns.checker import DnsChecker, Expectation
from domaingate.dns.inflight import QUERIES
from domaingate.hostnames import Kind
from domaingate.settings import Listen

TARGET = "shop.apps.test"


def long_name(index: int) -> str:
    """A name of 16 labels, the most a hostname may have: 19 queries per resolver."""
    return f"n{index}." + "l." * 13 + "acme.test"


async def flood(checks: int, resolvers: Sequence[Listen]) -> dict[str, object]:
    checker = DnsChecker(resolvers, allowed_cas=("letsencrypt.org",), timeout=10.0)
    expectations = [
        Expectation(
            hostname=long_name(i),
            kind=Kind.SUBDOMAIN,
            cname_target=TARGET,
            txt_name=f"_domaingate.{long_name(i)}",
            txt_value="unused",
            require_txt=False,
            edge_ipv4=(),
            edge_ipv6=(),
        )
        for i in range(checks)
    ]
    reports = await asyncio.gather(*(checker.check(e) for e in expectations))
    failures = [
        f"{report.hostname}: {finding.code}: {finding.message}"
        for report in reports
        for finding in report.findings
        if not finding.ok
    ]
    return {"checks": len(reports), "failures": failures, "peak": QUERIES.peak}


def main(argv: Sequence[str]) -> int:
    checks = int(argv[0])
    resolvers = [Listen(host, int(port)) for host, port in (r.split(":") for r in argv[1:])]
    print(json.dumps(asyncio.run(flood(checks, resolvers))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
