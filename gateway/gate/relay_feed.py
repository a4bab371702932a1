"""A gate worker's change feed: its gateway's follower, read over the relay's Unix socket
(`gateway.gate.relay`), never the database. A worker holds no database connection.

The load is the gateway's allowlist as the relay sends it; then each message is one read of the
gateway's follower, rows or none. If the stream breaks, the worker's follower answers from what
it has, counts the failure and reconnects (`Follower.run`): the feed asks for the batches it
missed, and reads on if the relay still has them. If the relay sends its whole allowlist
instead (the gateway restarted, or loaded everything again, or the backlog is gone), or tells
the worker to start over, the feed raises FeedDiverged: the follower loads everything again,
taking the load the relay has begun sending, and keeps none of the rows it had.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from domaingate.store.abc import AppOwner, ChangeFeed, GateRow, LoadRow
from domaingate.store.errors import FeedDiverged, StoreUnavailable, StoreUnreachable
from gateway.gate import relay_wire as wire

# The gateway's follower reads at least every second (PostgreSQL every 0.25 s, SQLite every
# 0.1 s), each read a message: this long without one, the stream is taken for broken.
SILENCE = 5.0
CONNECT_TIMEOUT = 5.0

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class RelayFeed(ChangeFeed):
    def __init__(self, path: Path, *, silence: float = SILENCE) -> None:
        self._path = path
        self._silence = silence
        self._stream: Stream | None = None
        # A load the relay began sending on a reconnect, for the load that follows.
        self._fresh: tuple[Stream, dict[str, Any]] | None = None
        self._epoch: str | None = None
        self._batch = 0
        self._seq = 0
        self._pending: list[GateRow] = []
        self.loads = 0

    @property
    def seq(self) -> int:
        return self._seq

    async def _open(self, request: dict[str, Any]) -> tuple[Stream, dict[str, Any]]:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self._path), limit=wire.LINE_LIMIT),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            raise StoreUnreachable(
                f"cannot reach the gateway's relay at {self._path}: {exc}"
            ) from exc
        try:
            writer.write(wire.line(request))
            return (reader, writer), await _message(reader, None)
        except BaseException:
            writer.close()
            raise

    async def load(
        self,
        take_apps: Callable[[list[AppOwner]], object],
        take_chunk: Callable[[list[LoadRow]], object],
    ) -> None:
        await self._drop()
        if self._fresh is not None:
            stream, first = self._fresh
            self._fresh = None
        else:
            stream, first = await self._open({"follow": {"epoch": None, "batch": 0}})
        try:
            if first.get("t") != wire.LOAD:
                raise StoreUnavailable(f"the gateway's relay answered {first.get('t')!r}")
            epoch, seq = str(first["epoch"]), int(first["seq"])
            reader = stream[0]
            while (message := await _message(reader, None))["t"] != wire.LOADED:
                if message["t"] == wire.APPS:
                    take_apps([(str(a), int(t), u, str(n)) for a, t, u, n in message["apps"]])
                elif message["t"] == wire.CHUNK:
                    take_chunk([(int(i), str(h), str(a), int(t)) for i, h, a, t in message["rows"]])
                else:
                    raise StoreUnavailable(f"unexpected {message['t']!r} in the relay's load")
        except BaseException:
            stream[1].close()
            raise
        self._stream = stream
        self.loads += 1
        self._epoch, self._batch, self._seq = epoch, int(message["batch"]), seq
        self._pending = []

    async def _connected(self) -> Stream:
        if self._stream is not None:
            return self._stream
        stream, first = await self._open({"follow": {"epoch": self._epoch, "batch": self._batch}})
        if first.get("t") == wire.RESUME:
            self._stream = stream
            return stream
        self._fresh = (stream, first)
        raise FeedDiverged("the gateway's relay started over: loading its allowlist again")

    async def changes(self, *, aside: bool = False) -> list[GateRow]:
        await self._connected()
        rows, self._pending = self._pending, []
        return rows

    async def wait(self) -> None:
        """Until the gateway's follower's next read arrives."""
        reader, _ = await self._connected()
        try:
            message = await _message(reader, self._silence)
        except BaseException:
            await self._drop()
            raise
        kind = message.get("t")
        if kind == wire.RESTART:
            await self._drop()
            raise FeedDiverged("the gateway's follower loaded everything again")
        if kind != wire.ROWS:
            await self._drop()
            raise StoreUnavailable(f"unexpected {kind!r} from the gateway's relay")
        self._pending.extend(_gate_row(row) for row in message["rows"])
        self._seq = int(message["seq"])
        if message.get("batch") is not None:
            self._batch = int(message["batch"])

    async def reset(self) -> None:
        await self._drop()

    async def _drop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream[1].close()

    async def count_by_status(self) -> dict[str, int]:
        """The gateway's counts (read from the database at most once a second there)."""
        (_, writer), answer = await self._open({"counts": True})
        writer.close()
        if answer.get("t") != wire.COUNTS:
            raise StoreUnavailable(f"the gateway counts no domains: {answer.get('error')}")
        return {str(status): int(n) for status, n in answer["counts"].items()}

    async def close(self) -> None:
        await self._drop()
        if self._fresh is not None:
            self._fresh[0][1].close()
            self._fresh = None


def _gate_row(row: list[Any]) -> GateRow:
    domain_id, hostname, app, status, upstream, tenant, owned, seq = row
    return (int(domain_id), hostname, app, status, upstream, tenant, int(owned), int(seq))


async def _message(reader: asyncio.StreamReader, silence: float | None) -> dict[str, Any]:
    try:
        data = await asyncio.wait_for(reader.readline(), silence)
    except TimeoutError as exc:
        raise StoreUnreachable(f"no word from the gateway's relay in {silence:g} s") from exc
    except (OSError, ValueError) as exc:  # ValueError: a line past the limit
        raise StoreUnreachable(f"the gateway's relay stream broke: {exc}") from exc
    if not data:
        raise StoreUnreachable("the gateway's relay closed the stream")
    try:
        return wire.parsed(data)
    except ValueError as exc:
        raise StoreUnavailable(f"the gateway's relay sent a bad message: {exc}") from exc
