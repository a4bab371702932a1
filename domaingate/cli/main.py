"""The `domaingate` command: run the daemons, manage tenants and domains, check a name's DNS."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from domaingate.cli import apps, commands, supervisor
from domaingate.errors import DomaingateError
from domaingate.settings import Settings, SettingsError, load_settings
from domaingate.store.errors import MigrationError, StoreUnavailable
from domaingate.terminal import say


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="domaingate",
        description="Custom domains over Caddy's on-demand TLS. Settings come from DOMAINGATE_* "
        "environment variables and --config (the environment wins).",
    )
    parser.add_argument("--config", type=Path, help="TOML settings file")
    # `--config` is also accepted after the command (`domaingate serve --config F`); SUPPRESS
    # keeps an absent one from overwriting a value given before the command.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML settings file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (
        ("up", "run the gateway and the reconciler together (Ctrl-C stops both)"),
        ("serve", "run the gateway (API and internal listeners)"),
        ("reconcile", "run the reconciler daemon"),
        ("migrate", "apply database migrations and exit"),
    ):
        sub.add_parser(name, help=text, parents=[common])

    tenant = sub.add_parser("tenant", help="manage tenants", parents=[common])
    tenant_actions = tenant.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (
        ("create", "create a tenant; prints its API token alone on stdout"),
        ("revoke", "revoke a tenant's token"),
    ):
        tenant_actions.add_parser(name, help=text, parents=[common]).add_argument("name")
    tenant_actions.add_parser("list", help="list tenants", parents=[common])

    domains = sub.add_parser("domains", help="operator view of every tenant's domains")
    actions = domains.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list domains", parents=[common])
    listing.add_argument("--tenant")
    listing.add_argument("--status")
    listing.add_argument("--app")
    for name, text in (
        ("show", "show one domain as JSON"),
        ("verify", "check DNS now and apply the result"),
        ("remove", "detach a domain"),
    ):
        action = actions.add_parser(name, help=text, parents=[common])
        action.add_argument("hostname")
        action.add_argument("--tenant", help="the claim of this tenant (a name may have several)")

    apps.add_parser(sub, common)

    check = sub.add_parser(
        "check", help="run every DNS check for a name and say what to fix", parents=[common]
    )
    check.add_argument("hostname")
    check.add_argument("--app", help="the app to expect a CNAME to, for a name not attached")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(config=args.config)
    except SettingsError as exc:
        say(f"domaingate: {exc}", file=sys.stderr)
        return 2
    try:
        return _dispatch(args, settings)
    except SettingsError as exc:
        # A setting found wrong only when a daemon starts (a listener address already taken).
        say(f"domaingate: {exc}", file=sys.stderr)
        return 2
    except DomaingateError as exc:
        say(f"domaingate: {exc.message}", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        # The database server is not there (PostgreSQL), or the database is locked or full:
        # say which and why, not a traceback. Nothing was done; trying again may work.
        say(f"domaingate: {exc}", file=sys.stderr)
        return 1
    except MigrationError as exc:
        # The database is left as it was; the message says what to do first.
        say(f"domaingate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "up":
        return supervisor.up(args.config)
    if args.command == "serve":
        return commands.serve(settings)
    if args.command == "reconcile":
        return commands.reconcile(settings)
    result: int = asyncio.run(commands.run(args, settings))
    return result
