"""Time: the clock the core is given (seconds since the epoch, as `time.time` counts them), and
time on the wire, where every time the API and webhooks show is RFC 3339 UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

# Injected wherever the core reads the time, so tests move it by hand.
Clock = Callable[[], float]


def rfc3339(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc3339_or_none(timestamp: float | None) -> str | None:
    return None if timestamp is None else rfc3339(timestamp)
