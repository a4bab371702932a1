"""The OpenAPI document matches the app it describes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.conftest import ADMIN_TOKEN, Api

SPEC_ERROR_CODES = {
    "INVALID_HOSTNAME",
    "WILDCARD_NOT_SUPPORTED",
    "RESERVED_HOSTNAME",
    "INVALID_APP",
    "INVALID_REQUEST",
    "UNAUTHORIZED",
    "DOMAIN_NOT_FOUND",
    "HOSTNAME_ALREADY_REGISTERED",
    "HOSTNAME_COOLDOWN_ACTIVE",
    "INVALID_STATE",
    "PAYLOAD_TOO_LARGE",
    "QUOTA_EXCEEDED",
    "ATTACH_RATE_LIMITED",
    "VERIFY_RATE_LIMITED",
}
METHODS = {"get", "post", "put", "patch", "delete"}


def routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":
            continue
        path = resource.canonical
        if path.startswith("/api/v1"):
            found.add((path, route.method.lower()))
    return found


async def document(api: Api) -> dict[str, Any]:
    reply = await api.call("GET", "/api/v1/openapi.json")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert isinstance(reply.body, dict)
    return reply.body


async def test_paths_and_methods_equal_the_apps_routes(api: Api) -> None:
    doc = await document(api)
    described = {
        (path, method)
        for path, operations in doc["paths"].items()
        for method in operations
        if method in METHODS
    }
    assert described == routes(api.app)
    # Sanity: the spec's six operations are all there.
    assert {
        ("/api/v1/domains", "post"),
        ("/api/v1/domains", "get"),
        ("/api/v1/domains/{domain}", "get"),
        ("/api/v1/domains/{domain}/verify", "post"),
        ("/api/v1/domains/{domain}/events", "get"),
        ("/api/v1/domains/{domain}", "delete"),
        ("/api/v1/apps", "get"),
        ("/api/v1/apps/{app}", "put"),
        ("/api/v1/apps/{app}", "delete"),
    } <= described


async def test_every_spec_error_code_is_documented(api: Api) -> None:
    doc = await document(api)
    codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    assert set(codes["enum"]) >= SPEC_ERROR_CODES


async def test_domain_schema_lists_exactly_the_fields_the_api_returns(api: Api) -> None:
    doc = await document(api)
    token = await api.tenant("acme")
    body = await api.attach(token, "shop.acme.com")
    schema = doc["components"]["schemas"]["Domain"]
    assert set(schema["required"]) == set(body)
    # The one optional field is the admin token's alone: the edges holding the certificate.
    assert set(schema["properties"]) == set(body) | {"cert_edges"}
    shown = await api.call("GET", "/api/v1/domains/shop.acme.com", token=ADMIN_TOKEN)
    assert set(schema["properties"]) == set(shown.body)
    listing = await api.call("GET", "/api/v1/domains", token=token)
    assert set(doc["components"]["schemas"]["DomainList"]["required"]) == set(listing.body)
    events = await api.call("GET", "/api/v1/domains/shop.acme.com/events", token=token)
    assert set(doc["components"]["schemas"]["EventList"]["required"]) == set(events.body)
    event_schema = doc["components"]["schemas"]["EventList"]["properties"]["events"]["items"]
    assert set(event_schema["required"]) == set(events.body["events"][0])


async def test_operations_are_public_only_for_the_document_itself(api: Api) -> None:
    doc = await document(api)
    assert doc["security"] == [{"bearer": []}]
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if (path, method) == ("/api/v1/openapi.json", "get"):
                assert operation["security"] == []
            else:
                assert "security" not in operation, (path, method)


async def test_every_reference_resolves(api: Api) -> None:
    doc = await document(api)

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                target: Any = doc
                for part in ref.removeprefix("#/").split("/"):
                    assert part in target, ref
                    target = target[part]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
