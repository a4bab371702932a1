"""The gateway's follower, shared with its gate workers (`GATE_WORKERS` > 1) over a Unix socket.

One follower per edge: the gateway's reads the database, and its workers follow it instead of
the database (`gateway.gate.relay_feed`), so N gate processes cost the database one follower's
connections and reads, not N. `RelayedFeed` wraps the gateway's own feed: every read it makes
(changed rows, or none) is passed on, in order, to every worker following.

A worker that connects is sent the gateway's allowlist as it is (a copy of its entries taken at
once, then sent a chunk at a time while the loop goes on serving: rows read meanwhile wait
behind it), then every read from there on. One that reconnects with the epoch and the batch it
had is sent the batches it missed, from a short backlog, or the whole allowlist again. When the
gateway's follower loads everything again (it found the database's history changed), the epoch
changes and every worker is told to start over: none keeps a row the gateway dropped.

The socket is in a directory of its own, mode 0700: only the gateway's user reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from domaingate.store.abc import AppOwner, ChangeFeed, GateRow, LoadRow
from gateway.gate import relay_wire as wire
from gateway.gate.allowlist import Allowlist

log = logging.getLogger(__name__)

# Changed rows kept for workers that reconnect: past this, one reloads everything.
BACKLOG_ROWS = 50_000
# What a worker may leave unread before it is let go (it reconnects, and catches up).
MAX_UNREAD = 256 * 1024 * 1024

Counts = Callable[[], Awaitable[dict[str, int]]]


class _Worker:
    """One worker following: its stream, and the rows read while its load is being sent."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.held: list[bytes] | None = None

    def send(self, data: bytes) -> None:
        if self.held is not None:
            self.held.append(data)
            return
        transport = self.writer.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_UNREAD:
            log.warning("a gate worker fell too far behind; letting it go (it reconnects)")
            transport.abort()
            return
        self.writer.write(data)


class Relay:
    """The gateway's side: what its follower reads, served to its workers."""

    def __init__(self, allowlist: Allowlist, counts: Counts | None = None) -> None:
        self._allowlist = allowlist
        self.counts = counts
        self.epoch = ""
        self.batch = 0
        self._seq = 0
        # (batch, its rows, its pieces), oldest first.
        self._backlog: deque[tuple[int, int, list[bytes]]] = deque()
        self._backlog_rows = 0
        self._workers: set[_Worker] = set()
        self._loaded = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self._dir: Path | None = None

    @property
    def path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("the relay is not serving")
        return self._dir / "relay.sock"

    def tee(self, feed: ChangeFeed) -> RelayedFeed:
        return RelayedFeed(feed, self)

    def loaded(self, seq: int) -> None:
        """The gateway's follower has loaded everything (again): a new epoch, and every worker
        following the old one starts over."""
        self.epoch = secrets.token_hex(8)
        self.batch = 0
        self._seq = seq
        self._backlog.clear()
        self._backlog_rows = 0
        for worker in list(self._workers):
            worker.send(wire.line({"t": wire.RESTART}))
            worker.writer.close()
        self._workers.clear()
        self._loaded.set()

    def read(self, rows: list[GateRow], seq: int) -> None:
        """One read of the gateway's follower, passed on to every worker following."""
        self._seq = seq
        if rows:
            self.batch += 1
            pieces = _pieces(rows, self.batch, seq)
            self._backlog.append((self.batch, len(rows), pieces))
            self._backlog_rows += len(rows)
            while self._backlog_rows > BACKLOG_ROWS and len(self._backlog) > 1:
                self._backlog_rows -= self._backlog.popleft()[1]
        else:
            pieces = [wire.line({"t": wire.ROWS, "rows": [], "batch": self.batch, "seq": seq})]
        for worker in self._workers:
            for piece in pieces:
                worker.send(piece)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Relay]:
        """The socket open for workers for as long as the context lasts."""
        self._dir = Path(tempfile.mkdtemp(prefix="domaingate-gate-"))
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=wire.LINE_LIMIT
            )
            os.chmod(self.path, 0o600)
            try:
                yield self
            finally:
                self._server.close()
                for worker in list(self._workers):
                    worker.writer.close()
                self._workers.clear()
                await self._server.wait_closed()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = wire.parsed(await reader.readline())
            if "counts" in request:
                await self._answer_counts(writer)
            elif isinstance(request.get("follow"), dict):
                await self._follow(request["follow"], reader, writer)
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            log.debug("a gate worker's relay connection ended: %s", exc)
        finally:
            writer.close()

    async def _answer_counts(self, writer: asyncio.StreamWriter) -> None:
        try:
            if self.counts is None:
                raise RuntimeError("the gateway counts no domains")
            message: dict[str, Any] = {"t": wire.COUNTS, "counts": await self.counts()}
        except Exception as exc:
            message = {"t": wire.ERROR, "error": str(exc) or type(exc).__name__}
        writer.write(wire.line(message))
        await writer.drain()

    async def _follow(
        self, asked: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await self._loaded.wait()
        worker = _Worker(writer)
        missed = self._missed(asked.get("epoch"), asked.get("batch"))
        if missed is not None:
            # Resumed: sent at once, with no await between the backlog and the live rows.
            worker.send(wire.line({"t": wire.RESUME, "epoch": self.epoch}))
            for piece in missed:
                worker.send(piece)
            self._workers.add(worker)
        else:
            self._workers.add(worker)
            await self._send_load(worker)
        # Until the worker goes (or the gateway lets it go): it sends nothing more.
        await reader.read()
        self._workers.discard(worker)

    def _missed(self, epoch: object, batch: object) -> list[bytes] | None:
        """The pieces of the batches after `batch` of `epoch`, or None if they are not all
        here (another epoch, or fallen out of the backlog)."""
        if epoch != self.epoch or not isinstance(batch, int) or batch > self.batch:
            return None
        if batch < self.batch and (not self._backlog or self._backlog[0][0] > batch + 1):
            return None
        return [piece for number, _, pieces in self._backlog if number > batch for piece in pieces]

    async def _send_load(self, worker: _Worker) -> None:
        # Taken at once: the allowlist, its epoch and its batch are of the same moment, and
        # rows read from here on are held until the load is sent.
        worker.held = []
        epoch, batch, seq = self.epoch, self.batch, self._seq
        entries = list(self._allowlist.entries().items())
        writer = worker.writer
        writer.write(wire.line({"t": wire.LOAD, "epoch": epoch, "seq": seq}))
        # Each (app, upstream) the entries hold, as an app of its own: the worker's load
        # resolves every domain's upstream to the one the gateway resolved.
        owners: dict[tuple[str, str], int] = {}
        for _, (_, app, upstream) in entries:
            owners.setdefault((app, upstream), len(owners))
        apps: list[AppOwner] = [(app, n, upstream, "") for (app, upstream), n in owners.items()]
        writer.write(wire.line({"t": wire.APPS, "apps": apps}))
        for start in range(0, len(entries), wire.PIECE):
            chunk: list[LoadRow] = [
                (domain_id, hostname, app, owners[(app, upstream)])
                for hostname, (domain_id, app, upstream) in entries[start : start + wire.PIECE]
            ]
            writer.write(wire.line({"t": wire.CHUNK, "rows": chunk}))
            await writer.drain()
            if writer.is_closing():  # let go, or told to start over meanwhile
                return
        del entries
        writer.write(wire.line({"t": wire.LOADED, "batch": batch}))
        held, worker.held = worker.held, None
        for piece in held:
            worker.send(piece)
        await writer.drain()


def _pieces(rows: list[GateRow], batch: int, seq: int) -> list[bytes]:
    last = len(rows) - 1
    return [
        wire.line(
            {
                "t": wire.ROWS,
                "rows": rows[start : start + wire.PIECE],
                "batch": batch if start + wire.PIECE > last else None,
                "seq": seq,
            }
        )
        for start in range(0, len(rows), wire.PIECE)
    ]


class RelayedFeed(ChangeFeed):
    """The gateway's feed, its every load and read passed on to the relay."""

    def __init__(self, feed: ChangeFeed, relay: Relay) -> None:
        self.inner = feed
        self._relay = relay

    @property
    def seq(self) -> int:
        return self.inner.seq

    @property
    def identity(self) -> str:
        return self.inner.identity

    async def load(
        self,
        take_apps: Callable[[list[AppOwner]], object],
        take_chunk: Callable[[list[LoadRow]], object],
    ) -> None:
        await self.inner.load(take_apps, take_chunk)
        # The follower takes the load in before its next await: a worker served after this
        # is served the new allowlist.
        self._relay.loaded(self.inner.seq)

    async def changes(self, *, aside: bool = False) -> list[GateRow]:
        rows = await self.inner.changes(aside=aside)
        self._relay.read(rows, self.inner.seq)
        return rows

    async def wait(self) -> None:
        await self.inner.wait()

    async def reset(self) -> None:
        await self.inner.reset()

    async def count_by_status(self) -> dict[str, int]:
        return await self.inner.count_by_status()

    async def close(self) -> None:
        await self.inner.close()
