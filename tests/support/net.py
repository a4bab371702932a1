"""Loopback addresses for the processes under test: every test listens and connects on 127.0.0.1.

A port handed to a server under test is free when chosen and bound by the server a moment later.
Two things can take it in between, and both have been seen to:
- another test process (pytest-xdist runs two) choosing the same port: every choice is claimed
  by a lock file that the choosing process holds, so no two processes on this machine hand out
  the same port at once;
- an outgoing connection's source port: choices come from below the kernel's ephemeral range,
  where the kernel never picks source ports.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path

HOST = "127.0.0.1"

_LOCKS = Path(tempfile.gettempdir()) / "domaingate-test-ports"
_SPAN = 12_000
# A claim only has to last from the choice to the server's bind; the oldest are let go so that a
# long run does not hold a descriptor for every port it ever used.
_HELD_MAX = 256
_held: collections.deque[int] = collections.deque()


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _range() -> range:
    high = _ephemeral_low()
    low = max(1024, high - _SPAN)
    return range(low, high)


def _claim(port: int) -> int | None:
    """Hold the machine-wide claim on `port`: a locked file, or None if another process holds it."""
    _LOCKS.mkdir(mode=0o1777, parents=True, exist_ok=True)
    try:
        fd = os.open(_LOCKS / str(port), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:  # another user's claim file: theirs
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _bindable(port: int) -> bool:
    """Free for both UDP and TCP on 127.0.0.1 right now (knot and Caddy's HTTP/3 use both)."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that is free now and that no other test process will hand out."""
    ports = _range()
    start = random.randrange(len(ports))
    for offset in range(len(ports)):
        port = ports[(start + offset) % len(ports)]
        fd = _claim(port)
        if fd is None:
            continue
        if not _bindable(port):
            os.close(fd)
            continue
        _held.append(fd)
        while len(_held) > _HELD_MAX:
            os.close(_held.popleft())
        return port
    raise RuntimeError(f"no free port on {HOST} in {ports.start}-{ports.stop - 1}")


async def answer_head(port: int, request: bytes) -> bytes:
    """`request` on a connection of its own to HOST:`port`, which the client closes once answered
    (as Go does): the answer's head, or what came before the server closed (b"": unanswered)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        return exc.partial if isinstance(exc, asyncio.IncompleteReadError) else b""
    finally:
        writer.close()
        await writer.wait_closed()
