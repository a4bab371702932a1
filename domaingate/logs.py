"""Logging for the daemons: one line per record on stderr, no timestamp.

Under systemd, journald adds the time and the unit; a traceback stays in one journal record.
A record may quote a tenant's DNS (a resolver's error for its name), and `domaingate up` writes
to the operator's terminal: control characters are shown as escapes (domaingate.terminal).
"""

from __future__ import annotations

import logging
import sys

from domaingate.terminal import printable


class OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record).replace("\n", " | "))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs every job run at INFO (the DNS poll alone runs every second) and a WARNING
    # whenever a run is skipped because the previous one is still busy, which coalescing makes
    # harmless by design. Its errors still show.
    logging.getLogger("apscheduler").setLevel(max(logging.ERROR, root.level))
