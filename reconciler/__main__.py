"""`python -m reconciler [--config FILE]`: load settings, log to stderr, run until SIGTERM/SIGINT.

Logs are one line per record with no timestamp: under systemd, journald adds the time and the unit.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from domaingate.logs import configure_logging
from domaingate.settings import SettingsError, load_settings
from domaingate.terminal import say
from reconciler.daemon import serve


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file (environment wins)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(config=args.config)
    except SettingsError as exc:
        say(f"domaingate reconciler: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        asyncio.run(serve(settings))
    except SettingsError as exc:  # found only when starting, e.g. RECONCILER_LISTEN taken
        say(f"domaingate reconciler: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
