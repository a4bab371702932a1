"""Schemathesis fuzzing of the tenant API against the OpenAPI document it serves.

The API listens on a loopback port in this process (pytest-aiohttp's test server), while
schemathesis sends its cases over HTTP from a worker thread. The document is fetched from
`GET /api/v1/openapi.json` and every operation in it is fuzzed three ways, each with a tenant's
token, with the admin token and with no token: positive cases, negative cases, and positive cases
steered onto names that exist (so the 2xx answers are reached, not only the 400s). Every answer
must be documented: never a 5xx, a documented status code, content type, headers and body.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ADMIN_TOKEN, Api, ApiFactory

# Each case fuzzes the whole API for many seconds.
pytestmark = pytest.mark.slow

Caller = Literal["tenant", "admin", "none"]
Flavour = Literal["positive", "negative", "steered"]
Tally = dict[tuple[str, Flavour], Counter[int]]
Operation = APIOperation[Any, Any, Any, Any]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Cases per operation, flavour and caller: up to ~700 requests per caller, ~20 s for the file.
EXAMPLES = 40
PUBLIC = "GET /api/v1/openapi.json"
# Names the tenant owns, for the steered cases; detaching runs last so the others find them.
POOL = [f"d{i}.acme.com" for i in range(6)]
LABELS = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9-]{0,20}", fullmatch=True)
# The pool's app (in use: not removable) and apps that registering creates and removing removes.
APPS = st.sampled_from(["web", "fuzz-1", "fuzz-2", "fuzz-3"])
# The operator's status and the app writes: a tenant's token is refused, whatever it sends.
ADMIN_ONLY = {"GET /api/v1/status", "PUT /api/v1/apps/{app}", "DELETE /api/v1/apps/{app}"}
# The pool's names as clients may spell them, and names of the same shape nobody attached.
NAMES = st.one_of(
    st.sampled_from(POOL),
    st.sampled_from(POOL).map(lambda name: name.upper() + "."),
    LABELS.map(lambda label: f"{label}.acme.com"),
)


@pytest.fixture
async def api(api_factory: ApiFactory) -> Api:
    # A 50 ms DNS budget against the silent resolver keeps POST …/verify cheap to fuzz.
    return await api_factory(dns_timeout=0.05, max_domains_per_tenant=10_000)


def headers_for(caller: Caller, token: str) -> dict[str, str]:
    if caller == "tenant":
        return {"Authorization": f"Bearer {token}"}
    if caller == "admin":
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return {}


def steered(operation: Operation, headers: dict[str, str]) -> Any:
    """Positive cases on names that exist, acting for the tenant that owns them."""
    if "{app}" in operation.path:
        return APPS.flatmap(
            lambda app: operation.as_strategy(path_parameters={"app": app}, headers=headers)
        )
    if "{domain}" in operation.path:
        return NAMES.flatmap(
            lambda name: operation.as_strategy(path_parameters={"domain": name}, headers=headers)
        )
    if operation.method.upper() == "POST":
        return LABELS.flatmap(
            lambda label: operation.as_strategy(
                body={"domain": f"{label}.fuzz.example.org", "app": "web"}, headers=headers
            )
        )
    return operation.as_strategy(headers=headers)


def fuzz(operation: Operation, strategy: Any, base_url: str, counts: Counter[int]) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        # Both judge how cases are made, not the API: schemathesis discards the candidates that
        # do not fit (a negative case that still matches the schema, say), which Hypothesis
        # counts as filtering, and building cases on a busy two-core machine can be slow.
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )
    @given(case=strategy)
    def run(case: Case[Any]) -> None:
        response = case.call(base_url=base_url)
        counts[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    run()


def fuzz_all(operations: list[Operation], caller: Caller, token: str, base_url: str) -> Tally:
    tally: Tally = {}
    fixed = headers_for(caller, token)
    acting = {**fixed, "X-Domaingate-Tenant": "acme"} if caller != "none" else fixed
    flavours: list[tuple[Flavour, Callable[[Operation], Any]]] = [
        ("positive", lambda op: op.as_strategy(GenerationMode.POSITIVE, headers=fixed)),
        ("negative", lambda op: op.as_strategy(GenerationMode.NEGATIVE, headers=fixed)),
        ("steered", lambda op: steered(op, acting)),
    ]
    for operation in sorted(operations, key=lambda op: op.method.upper() == "DELETE"):
        for flavour, strategy in flavours:
            inputs = next(iter(operation.iter_parameters()), None) or operation.body
            if flavour == "negative" and not inputs:
                continue  # no input that a negative case could break
            counts = tally.setdefault((operation.label, flavour), Counter())
            fuzz(operation, strategy(operation), base_url, counts)
    return tally


@pytest.mark.parametrize("caller", ["tenant", "admin", "none"])
async def test_every_answer_conforms_to_the_document(api: Api, caller: Caller) -> None:
    token = await api.tenant("acme")
    for name in POOL:
        await api.attach(token, name, app="web")
    served = await api.call("GET", "/api/v1/openapi.json")
    assert served.status == 200
    # The document as served over HTTP: what clients really read.
    schema = schemathesis.openapi.from_dict(served.body)
    schema.validate()
    operations = [
        schema[path][method.upper()]
        for path, methods in served.body["paths"].items()
        for method in methods
    ]
    assert len(operations) == 12
    server = api.client.server
    base_url = f"http://{server.host}:{server.port}"

    tally = await asyncio.to_thread(fuzz_all, operations, caller, token, base_url)

    # No silent pass: every operation was fuzzed, every flavour sent requests.
    assert {label for label, _ in tally} == {op.label for op in operations}
    empty = [key for key, counts in tally.items() if not counts]
    assert empty == []
    statuses: dict[str, set[int]] = {}
    for (label, _), counts in tally.items():
        statuses.setdefault(label, set()).update(counts)
    if caller == "none":
        # Without a token nothing but the document itself answers anything but 401.
        assert statuses.pop(PUBLIC) == {200}
        assert statuses == {label: {401} for label in statuses}
    else:
        if caller == "tenant":
            # A valid token without the right: 403, or 400 for a tenant header it may not send.
            refused = {label: statuses.pop(label) for label in ADMIN_ONLY}
            assert all(403 in seen and seen <= {400, 403} for seen in refused.values()), refused
        # Each operation was reached for real, not only refused as a bad request.
        assert [label for label, seen in statuses.items() if min(seen) >= 300] == [], statuses
