"""The messages of the gateway's relay to its gate workers (`gateway.gate.relay`,
`gateway.gate.relay_feed`): one JSON object a line over a Unix socket.

A worker opens with one request line: `{"follow": {"epoch": E, "batch": B}}` (E null for a
fresh start) or `{"counts": true}`. The gateway answers a follow with either `resume` (the
batches after B follow) or a load: `load` (epoch, seq), `apps`, `chunk`s, `loaded` (batch);
then `rows` as its follower reads them (a batch may come in several pieces; the last carries its
number), a `rows` with none at each of its follower's reads that found nothing, so a worker
knows the gateway is following, and `restart` when the gateway's follower has loaded everything
again (a worker must too: its rows may include some the gateway dropped).
"""

from __future__ import annotations

import json
from typing import Any

# Messages' `t`.
LOAD, APPS, CHUNK, LOADED, ROWS, RESUME, RESTART, COUNTS, ERROR = (
    "load",
    "apps",
    "chunk",
    "loaded",
    "rows",
    "resume",
    "restart",
    "counts",
    "error",
)
# Rows a message carries at most, and the longest line a reader takes: a batch of a million
# changed rows (an app's new upstream) goes in pieces, none near the limit.
PIECE = 5000
LINE_LIMIT = 64 * 1024 * 1024


def line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def parsed(data: bytes) -> dict[str, Any]:
    """A message; ValueError if the line is not one."""
    message = json.loads(data)
    if not isinstance(message, dict):
        raise ValueError("a relay message is a JSON object")
    return message
