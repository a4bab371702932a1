"""Telling systemd how a daemon is doing: the sd_notify protocol, in a few lines of `socket`.

Under a `Type=notify` unit systemd puts the address of a unix datagram socket in NOTIFY_SOCKET and
counts the service as started only when it reads `READY=1` there; units ordered after it (Caddy,
after the gateway) wait until then. Elsewhere (a terminal, `domaingate up`, the tests) the
variable is unset and nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"

READY = "READY=1"
STOPPING = "STOPPING=1"
SEND_TIMEOUT = 1.0


def status(text: str) -> str:
    """A `STATUS=` line, what `systemctl status` shows; one line, so no newline may pass."""
    return "STATUS=" + " ".join(text.split())


def notify(*assignments: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `assignments` (`READY=1`, `STATUS=…`) to systemd in one datagram. True once sent;
    False when there is no socket to send to, or it cannot be reached. A failure is logged, never
    raised: the daemon keeps working, and systemd, never told, fails the start at its timeout."""
    address = (os.environ if environ is None else environ).get(NOTIFY_SOCKET, "")
    if not address:
        return False
    if address.startswith("@"):
        # An abstract socket: the name after a NUL byte instead of the `@`.
        target = "\0" + address[1:]
    elif address.startswith("/"):
        target = address
    else:
        log.warning("%s=%s: only unix socket addresses are supported", NOTIFY_SOCKET, address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Called from the event loop: a receiver that stopped reading must not hang it.
            sock.settimeout(SEND_TIMEOUT)
            sock.sendto("\n".join(assignments).encode("utf-8"), target)
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", address, exc)
        return False
    return True
