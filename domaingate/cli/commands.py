"""What each `domaingate` sub-command does: daemons, migrations, tenants, domains, checks."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from domaingate import hostnames
from domaingate.cli import apps
from domaingate.dns.checker import DnsChecker
from domaingate.dns.findings import CheckReport
from domaingate.errors import DomainNotFound, InvalidRequest
from domaingate.instructions import expectation_for, expectation_unattached
from domaingate.logs import configure_logging
from domaingate.models import Domain
from domaingate.settings import Settings
from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store import edges, tenants
from domaingate.store.abc import Database
from domaingate.store.backends import open_database
from domaingate.targets import described
from domaingate.terminal import say
from domaingate.times import rfc3339
from domaingate.verification import verify_now
from domaingate.wire import domain_json


def serve(settings: Settings) -> int:
    # Imported here: the daemons pull in aiohttp and APScheduler, which the short commands
    # (`tenant create`, `domains list`, …) do not need and should not pay for at every start.
    from gateway.server import main as serve_gateway

    configure_logging(settings.log_level)
    serve_gateway(settings)
    return 0


def reconcile(settings: Settings) -> int:
    from reconciler.daemon import serve as serve_reconciler

    configure_logging(settings.log_level)
    asyncio.run(serve_reconciler(settings))
    return 0


async def run(args: argparse.Namespace, settings: Settings) -> int:
    async with await open_database(settings.db, role="cli") as db:
        if args.command == "migrate":
            say(f"{described(settings.db)}: schema version {await db.schema_version()}")
            return 0
        if args.command == "tenant":
            return await _tenant(args, db)
        if args.command == "domains":
            return await _domains(args, db, settings)
        if args.command == "apps":
            return await apps.run(args, db)
        if args.command == "check":
            return await _check(args, db, settings)
    raise InvalidRequest(f"unknown command {args.command}")


async def _tenant(args: argparse.Namespace, db: Database) -> int:
    if args.action == "create":
        _, token = await tenants.create(db, args.name, time.time)
        # The token alone on stdout, so `TOKEN=$(domaingate tenant create acme)` works.
        say(token)
        return 0
    if args.action == "revoke":
        tenant = await tenants.revoke(db, args.name, time.time)
        say(f"revoked {tenant.name}")
        return 0
    for tenant in await tenants.list_all(db):
        state = "revoked" if tenant.revoked_at is not None else "active"
        say(tenant.name, state, f"created {rfc3339(tenant.created_at)}", sep="\t")
    return 0


async def _domains(args: argparse.Namespace, db: Database, settings: Settings) -> int:
    if args.action == "list":
        tenant_id = (await tenants.get_by_name(db, args.tenant)).id if args.tenant else None
        try:
            status = Status(args.status) if args.status else None
        except ValueError:
            raise InvalidRequest(f"--status: unknown status {args.status!r}") from None
        after = 0
        while page := await domain_store.list_page(
            db, tenant_id=tenant_id, app=args.app, status=status, limit=500, after_id=after
        ):
            for domain in page:
                error = domain.last_check_code or "-"
                say(domain.hostname, domain.status, domain.tenant, domain.app, error, sep="\t")
            after = page[-1].id
        return 0
    tenant_id = (await tenants.get_by_name(db, args.tenant)).id if args.tenant else None
    domain = await domain_store.get(db, hostnames.normalize(args.hostname), tenant_id)
    if args.action == "show":
        # json.dumps escapes every control character already; each line still goes through say.
        now = time.time()
        held = await edges.edges_holding(
            db, [domain.hostname], since=now - settings.edge_stale_after
        )
        body = domain_json(domain, settings, now, cert_edges=held.get(domain.hostname, []))
        for line in json.dumps(body, indent=2).splitlines():
            say(line)
        return 0
    if args.action == "remove":
        await domain_store.remove(db, domain, time.time)
        say(f"removed {domain.hostname}")
        return 0
    checker = DnsChecker.from_settings(settings)
    updated, report = await verify_now(db, checker, settings, domain, time.time)
    _print_report(report)
    say(f"status: {updated.status}")
    return 0 if report.ok else 1


async def _check(args: argparse.Namespace, db: Database, settings: Settings) -> int:
    host = hostnames.parse(args.hostname, settings.reserved_zones)
    domain: Domain | None
    try:
        domain = await domain_store.get(db, host.name, None)
    except DomainNotFound:
        domain = None
    if domain is not None:
        expectation = expectation_for(domain, settings)
        say(
            f"{host.name}: {host.kind} attached by {domain.tenant} for app {domain.app}, "
            f"status {domain.status}"
        )
    else:
        if not args.app:
            raise InvalidRequest(f"{host.name} is not attached: name the app with --app")
        expectation = expectation_unattached(host, args.app, settings)
        say(
            f"{host.name}: {host.kind}, not attached (the ownership TXT record is checked "
            "once it is)"
        )
    report = await DnsChecker.from_settings(settings).check(expectation)
    _print_report(report)
    return 0 if report.ok else 1


def _print_report(report: CheckReport) -> None:
    for finding in report.findings:
        mark = "ok  " if finding.ok else "FAIL"
        code = f" [{finding.code}]" if finding.code else ""
        say(f"  {mark} {finding.check}{code}: {finding.message}")
    say(f"  DNS provider: {report.provider or 'unknown'}")
    if report.ok:
        say("result: DNS is right; the domain can be verified")
    elif report.transient:
        say("result: the resolvers could not give a definite answer; try again shortly")
    else:
        say("result: fix the records marked FAIL, then verify again")
