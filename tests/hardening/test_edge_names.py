"""A tenant learns nothing of the fleet's edges (both backends).

Two edges report their storages (one holds the tenant's certificate); the domain turns active,
is verified again, removed and cleaned from both. Through all of it, nothing a tenant's token
can read, and no event (what webhooks deliver), names an edge or a storage: not the domain
object listed, shown, attached or verified, not its events, not the account, not a refusal.
The admin's domain object names the edge holding the certificate (`cert_edges`).
"""

from __future__ import annotations

import json
from pathlib import Path

from domaingate.states import Status
from domaingate.store import domains as domain_store
from domaingate.store.abc import Database
from tests.conftest import ADMIN_TOKEN, ApiFactory, FakeClock, Reply, sql
from tests.reconciler.certificates.test_edges import Edges, edges, put
from tests.reconciler.conftest import db, db_target, walk

__all__ = ["db", "db_target", "edges"]  # fixtures, used by name

NAME = "shop.acme-edges.test"
EDGES = ("edge-secret-north", "edge-secret-south")


def _leaks(reply: Reply, secrets: list[str]) -> list[str]:
    text = json.dumps(reply.body) + json.dumps(dict(reply.headers))
    return [secret for secret in secrets if secret in text] + (
        ["cert_edges"] if "cert_edges" in text else []
    )


async def test_no_tenant_answer_or_event_names_an_edge(
    db: Database, clock: FakeClock, tmp_path: Path, edges: Edges, api_factory: ApiFactory
) -> None:
    api = await api_factory()
    token = await api.tenant("acme")
    stranger = await api.tenant("globex")
    north = await edges(EDGES[0], tmp_path / "north")
    south = await edges(EDGES[1], tmp_path / "south")
    seen: list[Reply] = []

    attached = await api.post_domain(token, NAME)
    assert attached.status == 201, attached.body
    seen.append(attached)
    domain = await walk(db, await domain_store.get(db, NAME, None), (Status.VERIFIED,), clock)
    put(south.edge.storage, NAME, clock())
    await south.edge_duties()
    await north.scan_certs()
    assert (await domain_store.get_by_id(db, domain.id)).status is Status.ACTIVE
    secrets = [*EDGES, *[str(row[0]) for row in sql(api.db_target, "SELECT id FROM cert_storages")]]
    assert len(secrets) == 4

    shown = await api.call("GET", f"/api/v1/domains/{NAME}", token=ADMIN_TOKEN)
    assert shown.body["cert_edges"] == [EDGES[1]]  # the operator sees where it is

    for path in (f"/api/v1/domains/{NAME}", "/api/v1/domains", f"/api/v1/domains/{NAME}/events"):
        seen.append(await api.call("GET", path, token=token))
    assert "certificate_found" in json.dumps(seen[-1].body)  # what the edges' reports decided
    seen.append(await api.call("GET", "/api/v1/account", token=token))
    seen.append(await api.call("POST", f"/api/v1/domains/{NAME}/verify", token=token))
    # Refusals: another tenant's name, the operator's views, a name taken.
    seen.append(await api.call("GET", f"/api/v1/domains/{NAME}", token=stranger))
    seen.append(await api.call("GET", "/api/v1/status", token=token))
    seen.append(await api.post_domain(stranger, NAME))
    seen.append(await api.call("DELETE", f"/api/v1/domains/{NAME}", token=token))
    await north.clean_up()
    await south.edge_duties()
    await north.clean_up()
    seen.append(await api.call("GET", f"/api/v1/domains/{NAME}/events", token=token))  # 404

    assert {reply.status for reply in seen} <= {200, 201, 202, 204, 403, 404, 409, 429}
    assert [
        (reply.status, _leaks(reply, secrets)) for reply in seen if _leaks(reply, secrets)
    ] == []
    events = json.dumps([list(row) for row in sql(api.db_target, "SELECT * FROM domain_events")])
    assert [secret for secret in secrets if secret in events] == []
