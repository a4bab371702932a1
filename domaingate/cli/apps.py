"""`domaingate apps add|list|remove`: the platform registers each app for one tenant."""

from __future__ import annotations

import argparse
import time

from domaingate.apps import check_app, check_upstream
from domaingate.store import apps as app_store
from domaingate.store import tenants
from domaingate.store.abc import Database
from domaingate.terminal import say


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    apps = sub.add_parser("apps", help="register apps for tenants (where their domains route)")
    actions = apps.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add", help="register an app for a tenant, or change its upstream", parents=[common]
    )
    add.add_argument("tenant")
    add.add_argument("app")
    add.add_argument(
        "--upstream",
        metavar="HOST:PORT",
        help="where /route sends the app's traffic (default: UPSTREAM_TEMPLATE)",
    )
    listing = actions.add_parser("list", help="list apps", parents=[common])
    listing.add_argument("--tenant")
    remove = actions.add_parser(
        "remove", help="remove an app (refused while attached domains use it)", parents=[common]
    )
    remove.add_argument("tenant")
    remove.add_argument("app")


async def run(args: argparse.Namespace, db: Database) -> int:
    if args.action == "list":
        tenant_id = (await tenants.get_by_name(db, args.tenant)).id if args.tenant else None
        for app in await app_store.list_apps(db, tenant_id):
            say(app.name, app.tenant, app.upstream or "-", sep="\t")
        return 0
    tenant = await tenants.get_by_name(db, args.tenant)
    name = check_app(args.app)
    if args.action == "add":
        upstream = check_upstream(args.upstream) if args.upstream is not None else None
        app, created = await app_store.put(db, tenant, name, upstream, time.time)
        verb = "registered" if created else "updated"
        say(f"{verb} {app.name} for {app.tenant} (upstream {app.upstream or 'from the template'})")
        return 0
    await app_store.remove(db, tenant, name)
    say(f"removed {name}")
    return 0
