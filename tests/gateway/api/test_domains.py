"""The domain resource end to end through the API app: attach, list, show, events, detach."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from domaingate.times import rfc3339
from tests.conftest import (
    EDGE_IPV4,
    EDGE_IPV6,
    PLATFORM_ZONE,
    T0,
    Api,
    ApiFactory,
    set_status,
    sql,
)

TOKEN = re.compile(r"dg_[0-9a-f]{64}")
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
TIME_FIELDS = (
    "created_at",
    "updated_at",
    "verified_at",
    "last_checked_at",
    "next_check_at",
    "cert_expires_at",
    "cert_renewal_due_at",
)
DOMAIN_FIELDS = {
    "domain",
    "app",
    "tenant",
    "status",
    "kind",
    "method",
    "txt_record",
    "instructions",
    "created_at",
    "updated_at",
    "verified_at",
    "last_checked_at",
    "next_check_at",
    "last_check_error",
    "failure_count",
    "dns_provider",
    "cert_expires_at",
    "cert_issuer",
    "cert_renewal_due_at",
    "now",
}


def parse_time(text: str) -> float:
    assert RFC3339.fullmatch(text), text
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.utcoffset() is not None and moment.utcoffset() == UTC.utcoffset(None)
    return moment.timestamp()


def assert_times(body: dict[str, Any]) -> None:
    for field in TIME_FIELDS:
        if body[field] is not None:
            parse_time(body[field])
    parse_time(body["now"])


async def test_attach_subdomain_returns_the_domain_object_with_cname_instructions(
    api: Api,
) -> None:
    token = await api.tenant("acme")
    reply = await api.post_domain(token, "shop.acme.com")
    assert reply.status == 201
    body = reply.body
    assert set(body) == DOMAIN_FIELDS
    assert reply.headers["Location"] == "/api/v1/domains/shop.acme.com"
    assert body["domain"] == "shop.acme.com"
    assert body["app"] == "shop"
    assert body["tenant"] == "acme"
    assert body["status"] == "pending"
    assert body["kind"] == "subdomain"
    assert body["method"] == "cname"
    assert body["txt_record"]["name"] == "_domaingate.shop.acme.com"
    assert TOKEN.fullmatch(body["txt_record"]["value"])
    assert body["instructions"]["records"] == [
        {"type": "CNAME", "name": "shop.acme.com", "value": f"shop.{PLATFORM_ZONE}"}
    ]
    assert body["instructions"]["notes"]
    assert body["last_check_error"] is None
    assert body["failure_count"] == 0
    assert body["verified_at"] is None
    assert body["last_checked_at"] is None
    assert body["cert_expires_at"] is None
    assert body["cert_issuer"] is None
    assert body["cert_renewal_due_at"] is None
    assert body["dns_provider"] is None
    assert_times(body)
    assert parse_time(body["created_at"]) == T0
    assert parse_time(body["updated_at"]) == T0
    assert parse_time(body["now"]) == T0
    # The first check is one PENDING_FAST_INTERVAL (60 s by default) after attach.
    assert parse_time(body["next_check_at"]) == T0 + 60


async def test_every_txt_token_is_fresh(api: Api) -> None:
    token = await api.tenant("acme")
    first = await api.attach(token, "a.acme.com")
    second = await api.attach(token, "b.acme.com")
    assert first["txt_record"]["value"] != second["txt_record"]["value"]


async def test_apex_gets_txt_and_edge_address_instructions(api: Api) -> None:
    token = await api.tenant("acme")
    body = await api.attach(token, "acme.com")
    assert body["kind"] == "apex"
    assert body["method"] == "txt"
    txt = body["txt_record"]
    assert txt["name"] == "_domaingate.acme.com"
    assert TOKEN.fullmatch(txt["value"])
    assert body["instructions"]["records"] == [
        {"type": "TXT", "name": "_domaingate.acme.com", "value": txt["value"]},
        {"type": "A", "name": "acme.com", "value": EDGE_IPV4},
        {"type": "AAAA", "name": "acme.com", "value": EDGE_IPV6},
    ]


async def test_apex_and_subdomain_follow_the_public_suffix_list(api: Api) -> None:
    token = await api.tenant("acme")
    assert (await api.attach(token, "acme.co.uk"))["kind"] == "apex"
    assert (await api.attach(token, "shop.acme.co.uk"))["kind"] == "subdomain"
    assert (await api.attach(token, "deep.shop.acme.com"))["kind"] == "subdomain"


async def test_apex_without_edge_addresses_says_so(api_factory: ApiFactory) -> None:
    api = await api_factory(edge_ipv4=(), edge_ipv6=())
    token = await api.tenant("acme")
    body = await api.attach(token, "acme.com")
    assert [r["type"] for r in body["instructions"]["records"]] == ["TXT"]
    assert any("EDGE_IPV4" in note for note in body["instructions"]["notes"])


async def test_require_txt_adds_the_txt_record_for_subdomains(api_factory: ApiFactory) -> None:
    api = await api_factory(require_txt=True)
    token = await api.tenant("acme")
    body = await api.attach(token, "shop.acme.com")
    assert body["kind"] == "subdomain"
    assert body["method"] == "txt"
    assert body["instructions"]["records"] == [
        {"type": "CNAME", "name": "shop.acme.com", "value": f"shop.{PLATFORM_ZONE}"},
        {
            "type": "TXT",
            "name": "_domaingate.shop.acme.com",
            "value": body["txt_record"]["value"],
        },
    ]


async def test_txt_prefix_setting_names_the_ownership_record(api_factory: ApiFactory) -> None:
    api = await api_factory(txt_prefix="_verify")
    token = await api.tenant("acme")
    body = await api.attach(token, "acme.com")
    assert body["txt_record"]["name"] == "_verify.acme.com"
    assert body["instructions"]["records"][0]["name"] == "_verify.acme.com"


async def test_hostnames_are_normalised_before_anything_else(api: Api) -> None:
    token = await api.tenant("acme")
    body = await api.attach(token, "  Shop.ACME.com.  ")
    assert body["domain"] == "shop.acme.com"
    assert body["instructions"]["records"][0]["name"] == "shop.acme.com"


async def test_idn_u_label_is_stored_as_its_a_label(api: Api) -> None:
    token = await api.tenant("acme")
    body = await api.attach(token, "Shop.Bücher.de")
    assert body["domain"] == "shop.xn--bcher-kva.de"
    assert body["kind"] == "subdomain"
    assert body["instructions"]["records"][0]["name"] == "shop.xn--bcher-kva.de"
    # Either form finds it again.
    for path in ("shop.bücher.de", "shop.xn--bcher-kva.de", "SHOP.B%C3%BCCHER.DE"):
        reply = await api.call("GET", f"/api/v1/domains/{path}", token=token)
        assert reply.status == 200, (path, reply)
        assert reply.body["domain"] == "shop.xn--bcher-kva.de"
    # The A-label typed directly is the same name.
    again = await api.post_domain(token, "shop.xn--bcher-kva.de")
    assert again.status == 409
    assert again.code == "HOSTNAME_ALREADY_REGISTERED"


async def test_show_returns_the_same_object_with_the_current_now(api: Api) -> None:
    token = await api.tenant("acme")
    attached = await api.attach(token, "shop.acme.com")
    api.clock.advance(90)
    reply = await api.call("GET", "/api/v1/domains/shop.acme.com", token=token)
    assert reply.status == 200
    assert set(reply.body) == DOMAIN_FIELDS
    assert parse_time(reply.body["now"]) == T0 + 90
    assert reply.body["now"] == rfc3339(T0 + 90)
    assert {k: v for k, v in reply.body.items() if k != "now"} == {
        k: v for k, v in attached.items() if k != "now"
    }


async def test_path_names_are_normalised_like_attached_ones(api: Api) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    for path in ("SHOP.acme.COM", "shop.acme.com."):
        reply = await api.call("GET", f"/api/v1/domains/{path}", token=token)
        assert reply.status == 200, path
        assert reply.body["domain"] == "shop.acme.com"


async def test_list_is_oldest_first_with_now_and_no_cursor_at_the_end(api: Api) -> None:
    token = await api.tenant("acme")
    names = ["c.acme.com", "a.acme.com", "b.acme.com"]
    for name in names:
        await api.attach(token, name)
        api.clock.advance(1)
    reply = await api.call("GET", "/api/v1/domains", token=token)
    assert reply.status == 200
    assert set(reply.body) == {"domains", "next_cursor", "now"}
    assert [d["domain"] for d in reply.body["domains"]] == names
    assert reply.body["next_cursor"] is None
    assert parse_time(reply.body["now"]) == T0 + 3
    for domain in reply.body["domains"]:
        assert set(domain) == DOMAIN_FIELDS
        assert_times(domain)


async def test_cursor_pagination_walks_every_domain_once(api: Api) -> None:
    token = await api.tenant("acme")
    names = [f"d{i}.acme.com" for i in range(7)]
    for name in names:
        await api.attach(token, name)
    seen: list[str] = []
    pages: list[int] = []
    params = {"limit": "3"}
    while True:
        reply = await api.call("GET", "/api/v1/domains", token=token, params=params)
        assert reply.status == 200, reply
        page = [d["domain"] for d in reply.body["domains"]]
        pages.append(len(page))
        seen += page
        cursor = reply.body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor
        params = {"limit": "3", "cursor": cursor}
    assert seen == names
    assert pages == [3, 3, 1]


async def test_exact_last_page_has_no_next_cursor(api: Api) -> None:
    token = await api.tenant("acme")
    for i in range(4):
        await api.attach(token, f"d{i}.acme.com")
    first = await api.call("GET", "/api/v1/domains", token=token, params={"limit": "2"})
    assert first.body["next_cursor"] is not None
    second = await api.call(
        "GET",
        "/api/v1/domains",
        token=token,
        params={"limit": "2", "cursor": first.body["next_cursor"]},
    )
    assert [d["domain"] for d in second.body["domains"]] == ["d2.acme.com", "d3.acme.com"]
    assert second.body["next_cursor"] is None


async def test_list_filters_by_app_and_status(api: Api) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "a.acme.com", app="web")
    await api.attach(token, "b.acme.com", app="blog")
    await api.attach(token, "c.acme.com", app="web")
    await api.attach(token, "d.acme.com", app="web")
    set_status(api.db_target, "c.acme.com", "verified")
    set_status(api.db_target, "d.acme.com", "failed")

    async def names(params: dict[str, str]) -> list[str]:
        reply = await api.call("GET", "/api/v1/domains", token=token, params=params)
        assert reply.status == 200, reply
        return [d["domain"] for d in reply.body["domains"]]

    assert await names({"app": "web"}) == ["a.acme.com", "c.acme.com", "d.acme.com"]
    assert await names({"app": "blog"}) == ["b.acme.com"]
    assert await names({"app": "none"}) == []
    assert await names({"status": "pending"}) == ["a.acme.com", "b.acme.com"]
    assert await names({"status": "verified"}) == ["c.acme.com"]
    assert await names({"status": "failed"}) == ["d.acme.com"]
    assert await names({"status": "active"}) == []
    assert await names({"app": "web", "status": "pending"}) == ["a.acme.com"]
    # Filters and the cursor combine.
    first = await api.call(
        "GET", "/api/v1/domains", token=token, params={"app": "web", "limit": "1"}
    )
    assert [d["domain"] for d in first.body["domains"]] == ["a.acme.com"]
    rest = await names({"app": "web", "limit": "1", "cursor": first.body["next_cursor"]})
    assert rest == ["c.acme.com"]


async def test_events_list_the_moves_oldest_first(api: Api) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    api.clock.advance(5)
    reply = await api.call("GET", "/api/v1/domains/shop.acme.com/events", token=token)
    assert reply.status == 200
    assert reply.body["domain"] == "shop.acme.com"
    assert parse_time(reply.body["now"]) == T0 + 5
    events = reply.body["events"]
    assert len(events) == 1
    created = events[0]
    assert created["type"] == "domain.created"
    assert created["from_status"] is None
    assert created["to_status"] == "pending"
    assert parse_time(created["created_at"]) == T0
    assert set(created) == {
        "id",
        "type",
        "from_status",
        "to_status",
        "reason",
        "message",
        "created_at",
    }


async def test_delete_detaches_and_the_domain_disappears(api: Api) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    api.clock.advance(10)
    reply = await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=token)
    assert reply.status == 204
    assert reply.body == ""
    for method, path in (
        ("GET", "/api/v1/domains/shop.acme.com"),
        ("GET", "/api/v1/domains/shop.acme.com/events"),
        ("POST", "/api/v1/domains/shop.acme.com/verify"),
        ("DELETE", "/api/v1/domains/shop.acme.com"),
    ):
        gone = await api.call(method, path, token=token)
        assert gone.status == 404, (method, path)
        assert gone.code == "DOMAIN_NOT_FOUND"
    listing = await api.call("GET", "/api/v1/domains", token=token)
    assert listing.body["domains"] == []
    # Kept for audit: the row is there, removed, with its removal event.
    rows = _rows(api, "SELECT status, removed_at FROM domains WHERE hostname = 'shop.acme.com'")
    assert rows == [("removed", T0 + 10)]
    moves = _rows(
        api,
        "SELECT type, from_status, to_status FROM domain_events e"
        " JOIN domains d ON d.id = e.domain_id WHERE d.hostname = 'shop.acme.com' ORDER BY e.id",
    )
    assert moves == [
        ("domain.created", None, "pending"),
        ("domain.removed", "pending", "removed"),
    ]


async def test_events_record_every_state_move(api: Api) -> None:
    token = await api.tenant("acme")
    await api.attach(token, "shop.acme.com")
    await api.call("DELETE", "/api/v1/domains/shop.acme.com", token=token)
    # Re-attached by the same tenant: a new domain with its own, fresh history.
    await api.attach(token, "shop.acme.com")
    reply = await api.call("GET", "/api/v1/domains/shop.acme.com/events", token=token)
    assert [e["type"] for e in reply.body["events"]] == ["domain.created"]
    ids = [e["id"] for e in reply.body["events"]]
    assert len(set(ids)) == len(ids)


def _rows(api: Api, statement: str) -> list[tuple[Any, ...]]:
    return sql(api.db_target, statement)
