"""The routes of the domain resource: attach, list, inspect, verify now, events, detach."""

from __future__ import annotations

import logging

from aiohttp import web

from domaingate import hostnames, wire
from domaingate.models import Domain
from domaingate.settings import Settings
from domaingate.store import domains as store
from domaingate.store import edges, events, limits
from domaingate.times import rfc3339
from domaingate.verification import verify_now
from gateway.api import PREFIX, inputs
from gateway.api.auth import PRINCIPAL
from gateway.keys import CHECKER, CLOCK, DB, GATE, SETTINGS

log = logging.getLogger(__name__)


async def _reflect(request: web.Request, domain: Domain) -> None:
    """A change made here holds at this process's gate once the API answers: the gate's follower
    reads the feed past this committed write first. Never the row as this request saw it: a
    change committed meanwhile elsewhere (a detach at another edge, a take-down) would be
    undone at this gate (`gateway.gate.feed`)."""
    if not await request.config_dict[GATE].follower.caught_up():
        log.warning(
            "the gate has not applied the change to %s yet; it will as its follower catches up",
            domain.hostname,
        )


async def _cert_edges(
    request: web.Request, domains: list[Domain], now: float
) -> dict[str, list[str]] | None:
    """For the admin token: the edges holding each domain's certificate (a name none holds is
    left out). None for a tenant's token: a tenant does not learn the fleet's edges."""
    if not request[PRINCIPAL].admin:
        return None
    since = now - request.config_dict[SETTINGS].edge_stale_after
    return await edges.edges_holding(
        request.config_dict[DB], (domain.hostname for domain in domains), since=since
    )


def _domain_json(
    domain: Domain, settings: Settings, now: float, held: dict[str, list[str]] | None
) -> dict[str, object]:
    cert_edges = None if held is None else held.get(domain.hostname, [])
    return wire.domain_json(domain, settings, now, cert_edges=cert_edges)


async def _lookup(request: web.Request) -> Domain:
    name = inputs.path_hostname(request)
    return await store.get(request.config_dict[DB], name, request[PRINCIPAL].tenant_id)


async def attach(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    tenant = principal.require_tenant()
    attach_request = inputs.parse_attach(await inputs.read_json_object(request))
    settings = request.config_dict[SETTINGS]
    host = hostnames.parse(attach_request.domain, settings.reserved_zones)
    policy = store.AttachPolicy(
        require_txt=settings.require_txt,
        quota=settings.max_domains_per_tenant,
        app_quota=settings.max_domains_per_app,
        first_check_in=settings.pending_fast_interval,
        hourly_attaches=settings.attach_rate_limit,
    )
    clock = request.config_dict[CLOCK]
    domain = await store.attach(
        request.config_dict[DB], tenant, host, attach_request.app, policy, clock
    )
    body = wire.domain_json(domain, settings, clock())
    return web.json_response(
        body, status=201, headers={"Location": f"{PREFIX}/domains/{domain.hostname}"}
    )


async def list_domains(request: web.Request) -> web.Response:
    query = inputs.parse_list_query(request.query)
    page = await store.list_page(
        request.config_dict[DB],
        tenant_id=request[PRINCIPAL].tenant_id,
        app=query.app,
        status=query.status,
        limit=query.limit + 1,
        after_id=query.after_id,
    )
    more = len(page) > query.limit
    page = page[: query.limit]
    settings = request.config_dict[SETTINGS]
    now = request.config_dict[CLOCK]()
    held = await _cert_edges(request, page, now)
    return web.json_response(
        {
            "domains": [_domain_json(domain, settings, now, held) for domain in page],
            "next_cursor": inputs.encode_cursor(page[-1].id) if more else None,
            "now": rfc3339(now),
        }
    )


async def show(request: web.Request) -> web.Response:
    domain = await _lookup(request)
    now = request.config_dict[CLOCK]()
    held = await _cert_edges(request, [domain], now)
    return web.json_response(_domain_json(domain, request.config_dict[SETTINGS], now, held))


async def verify(request: web.Request) -> web.Response:
    domain = await _lookup(request)
    db = request.config_dict[DB]
    clock = request.config_dict[CLOCK]
    settings = request.config_dict[SETTINGS]
    await limits.consume_verify_allowance(db, domain.tenant_id, domain.hostname, clock)
    updated, report = await verify_now(db, request.config_dict[CHECKER], settings, domain, clock)
    now = clock()
    await _reflect(request, updated)
    return web.json_response(wire.verify_json(updated, report, now))


async def list_events(request: web.Request) -> web.Response:
    domain = await _lookup(request)
    found = await events.for_domain(request.config_dict[DB], domain.id)
    return web.json_response(
        {
            "domain": domain.hostname,
            "events": [wire.event_json(event) for event in found],
            "now": rfc3339(request.config_dict[CLOCK]()),
        }
    )


async def detach(request: web.Request) -> web.Response:
    domain = await _lookup(request)
    removed = await store.remove(request.config_dict[DB], domain, request.config_dict[CLOCK])
    await _reflect(request, removed)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_post("/domains", attach)
    app.router.add_get("/domains", list_domains)
    app.router.add_get("/domains/{domain}", show)
    app.router.add_delete("/domains/{domain}", detach)
    app.router.add_post("/domains/{domain}/verify", verify)
    app.router.add_get("/domains/{domain}/events", list_events)
