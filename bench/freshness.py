"""Cross-edge freshness on PostgreSQL: how long a committed change takes to hold at every gateway.

Three real gateways (`python -m domaingate serve`, each on its own ports, `DB=postgresql://…`)
follow one database, as three edges would. A writer process commits changes at a steady rate,
each in its own transaction (a pending domain set to `verified`), and prints the moment each
commit returned. For every change and every gateway, the time from that moment to the gateway's
`/tls-ask` answering 200 for the name: each gateway's pending names are asked again every few
milliseconds over one keep-alive connection. Target: p99 ≤ 1 s at 100 changes/s over three.

    python -m bench.freshness [--url postgresql://…] [--rate 100] [--seconds 10] [--gates 3]

Without --url it starts a throwaway cluster and builds the 1,000,000-domain database
(`bench.pgdb`). Both clocks are CLOCK_MONOTONIC, which processes on one machine share.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench import common, gatebench, gatedb, pgdb
from bench.common import HOST

POLL = 0.005  # seconds between two rounds of asks at one gateway
TIMEOUT = 5.0  # a change not seen by then counts as missed


@dataclass
class Result:
    delays: list[float] = field(default_factory=list)
    timeouts: int = 0
    changes: int = 0
    gates: int = 0
    asks: int = 0

    def quantile(self, q: int) -> float:
        return statistics.quantiles(self.delays, n=100)[q - 1] if len(self.delays) > 1 else 0.0

    def summary(self) -> str:
        return (
            f"{len(self.delays)} arrivals ({self.gates} gates, {self.changes} changes), "
            f"{self.timeouts} timeouts: p50 {self.quantile(50) * 1000:.1f} ms, "
            f"p99 {self.quantile(99) * 1000:.1f} ms, max {max(self.delays) * 1000:.1f} ms"
        )


class Asker:
    """GET /tls-ask over one keep-alive connection; returns the status."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def ask(self, name: str) -> int:
        if self._streams is None:
            self._streams = await asyncio.open_connection(HOST, self.port)
        reader, writer = self._streams
        writer.write(f"GET /tls-ask?domain={name} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length")
        )
        await reader.readexactly(length)
        return int(lines[0].split()[1])

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def _follow(
    asker: Asker, pending: dict[str, float], result: Result, done: asyncio.Event
) -> None:
    """Ask for every pending name each round until the writer is done and nothing is pending."""
    while not (done.is_set() and not pending):
        for name, committed in list(pending.items()):
            status = await asker.ask(name)
            result.asks += 1
            now = time.monotonic()
            if status == 200:
                result.delays.append(now - committed)
                del pending[name]
            elif now - committed > TIMEOUT:
                result.timeouts += 1
                del pending[name]
        await asyncio.sleep(POLL)


# How one gateway's asker follows the pending changes until the writer is done (`_follow`).
Follow = Callable[[Asker, dict[str, float], Result, asyncio.Event], Coroutine[Any, Any, None]]


async def measure(
    url: str, ports: list[int], targets: list[tuple[int, str]], rate: float
) -> Result:
    askers = [Asker(port) for port in ports]
    for asker in askers:
        for _, name in targets[:5]:
            if await asker.ask(name) != 403:
                raise RuntimeError(f"{name} is allowed at :{asker.port} before its change")
    return await follow_writes(
        url, askers, targets, rate, _follow, Path(common.WORK / "freshness-ids.txt")
    )


async def follow_writes(
    url: str,
    askers: list[Asker],
    targets: list[tuple[int, str]],
    rate: float,
    follow: Follow,
    ids: Path,
) -> Result:
    """Commit `targets` at `rate` a second from a writer process, while each asker follows
    (`follow`) the changes committed and not yet allowed at its gateway."""
    names = dict(targets)
    ids.write_text("\n".join(str(i) for i, _ in targets), encoding="utf-8")
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.freshness", "write", url, str(rate), str(ids),
        stdout=asyncio.subprocess.PIPE, cwd=common.REPO,
    )  # fmt: skip
    assert writer.stdout is not None
    result = Result(changes=len(targets), gates=len(askers))
    pending: list[dict[str, float]] = [{} for _ in askers]
    done = asyncio.Event()
    followers = [
        asyncio.create_task(follow(asker, waiting, result, done))
        for asker, waiting in zip(askers, pending, strict=True)
    ]
    async for line in writer.stdout:
        domain_id, committed = line.decode().split()
        for waiting in pending:
            waiting[names[int(domain_id)]] = float(committed)
    done.set()
    await writer.wait()
    await asyncio.gather(*followers)
    for asker in askers:
        await asker.close()
    if writer.returncode:
        raise RuntimeError(f"the writer exited with {writer.returncode}")
    return result


def write(url: str, rate: float, ids_file: Path) -> None:
    """The writer: one commit per id at `rate` a second; prints `id monotonic` after each."""
    ids = [int(line) for line in ids_file.read_text(encoding="utf-8").split()]
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        for n, domain_id in enumerate(ids):
            time.sleep(max(0.0, started + n / rate - time.monotonic()))
            conn.execute(
                "UPDATE domains SET status = 'verified', updated_at = %s WHERE id = %s",
                (time.time(), domain_id),
            )
            print(domain_id, time.monotonic(), flush=True)


@contextlib.contextmanager
def gateways(url: str, count: int) -> Iterator[list[gatebench.Server]]:
    """`count` gateways on `url`, unpinned (edges would each have their own machine)."""
    servers: list[gatebench.Server] = []
    try:
        for _ in range(count):
            servers.append(gatebench.start_gate(url, core=None))
        yield servers
    finally:
        for server in servers:
            common.stop(server.process)


def run(url: str, rate: float, seconds: float, gates: int) -> tuple[Result, list[gatebench.Server]]:
    """Measure on a database built by `bench.pgdb` with the gate benchmark's shape."""
    targets = gatedb.pending_ids(1_000_000, 10_000, int(rate * seconds))
    with gateways(url, gates) as servers:
        return asyncio.run(measure(url, [s.port for s in servers], targets, rate)), servers


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "write":
        write(sys.argv[2], float(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a database built by bench.pgdb (1,000,000 domains)")
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--gates", type=int, default=3)
    args = parser.parse_args()
    common.WORK.mkdir(parents=True, exist_ok=True)
    if args.url is not None:
        result, _ = run(args.url, args.rate, args.seconds, args.gates)
    else:
        with pgdb.cluster() as cluster:
            url = cluster.database()
            pgdb.build(url, 1_000_000, 10_000)
            result, _ = run(url, args.rate, args.seconds, args.gates)
    print(result.summary())


if __name__ == "__main__":
    main()
