"""Certificate files shaped to make the PEM parse slow, as anyone able to write Caddy's storage
could plant them. The scan parses in the reconciler's event-loop process and the parse holds the
GIL, so a parse that grows faster than its input stalls `/healthz`, the lease renewals and the DNS
checks with it: every file the scan reads (at most MAX_FILE_OCTETS) must cost time linear in its
size.

Linear is checked by growth, not by a deadline: the same shape 64 times larger may cost at most
4 * 64 times the CPU time (best of a few runs, CPU time of this thread, so a busy machine's
other processes do not count). A quadratic parse costs 4096 times as much.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import pytest

from reconciler.certificates.storage import MAX_FILE_OCTETS, CertError, load_leaf

BEGIN = b"-----BEGIN CERTIFICATE-----"
END = b"-----END CERTIFICATE-----"
BASE64 = b"QUFB" * 16 + b"\n"
SMALL = MAX_FILE_OCTETS // 64
SLACK = 4
# A parse still running after this much CPU time has run away: stopped so the test fails instead
# of hanging. Far above any linear parse of 1 MiB; the verdict is the growth, never this.
RUNAWAY = 1.0

# (head, unit repeated to fill the size, tail)
SHAPES: dict[str, tuple[bytes, bytes, bytes]] = {
    "begin lines": (b"", BEGIN + b"\n", b""),
    "begin lines, crlf": (b"", BEGIN + b"\r\n", b""),
    "begin lines among base64": (b"", BEGIN + b"\n" + BASE64, b""),
    "begin markers on one line": (b"", BEGIN, b""),
    "begin markers ending in cr": (b"", BEGIN + b"\r", b""),
    "one begin and endless base64": (BEGIN + b"\n", BASE64, b""),
    "begin lines closed by one end": (b"", BEGIN + b"\n", b"\n" + END + b"\n"),
    "one begin and end markers cut short": (BEGIN + b"\n", b"\n" + END[:-1], b""),
    "end lines only": (b"", END + b"\n", b""),
    "blank": (b"", b" \r\n\t", b""),
}


def fill(shape: str, size: int) -> bytes:
    head, unit, tail = SHAPES[shape]
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


class Runaway(Exception):
    pass


def parse_cpu_seconds(data: bytes) -> float:
    """CPU seconds this thread spent refusing `data` as a certificate file."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        raise Runaway

    previous = signal.signal(signal.SIGVTALRM, stop)
    # CPython's regex engine checks for signals as it goes, so this stops a runaway `re` too.
    signal.setitimer(signal.ITIMER_VIRTUAL, RUNAWAY)
    start = time.thread_time()
    try:
        with pytest.raises(CertError):
            load_leaf(data, name="a.test", issuer_key="local", path=Path("a.test.crt"))[0]
    except Runaway:
        pytest.fail(f"parsing {len(data)} octets still running after {RUNAWAY:g} CPU s")
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)
    return time.thread_time() - start


def best(runs: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(runs))


@pytest.mark.parametrize("shape", SHAPES)
def test_a_hostile_certificate_file_costs_time_linear_in_its_size(shape: str) -> None:
    small, large = fill(shape, SMALL), fill(shape, MAX_FILE_OCTETS)
    assert MAX_FILE_OCTETS - len(large) < 64 and len(large) // len(small) == 64
    base = best(5, lambda: parse_cpu_seconds(small))
    bound = SLACK * len(large) / len(small) * base
    took = best(3, lambda: parse_cpu_seconds(large))
    assert took <= bound, (
        f"{len(large)} octets took {took / base:.0f}x the CPU time of {len(small)}; "
        f"linear is {len(large) // len(small)}x"
    )
