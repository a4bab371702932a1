"""GET /api/v1/account (who the token is, the quotas and their use) and GET /api/v1/status (the
operator's view of the reconciler's work), and the per-app quota the account shows."""

from __future__ import annotations

import asyncio

from domaingate.times import rfc3339
from tests.conftest import ADMIN_TOKEN, T0, Api, ApiFactory, sql


async def test_a_tenant_sees_itself_its_quotas_and_their_use(api_factory: ApiFactory) -> None:
    api = await api_factory(max_domains_per_tenant=5, max_domains_per_app=3)
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "a.acme.com", app="web")
    await api.attach(acme, "b.acme.com", app="web")
    await api.attach(acme, "c.acme.com", app="shop")
    await api.attach(globex, "a.globex.com", app="globex-web")
    reply = await api.call("GET", "/api/v1/account", token=acme)
    assert reply.status == 200
    assert reply.body == {
        "admin": False,
        "tenant": "acme",
        "limits": {"max_domains_per_tenant": 5, "max_domains_per_app": 3},
        "usage": {
            "domains": 3,
            "apps": [{"app": "shop", "domains": 1}, {"app": "web", "domains": 2}],
        },
        "now": rfc3339(T0),
    }


async def test_the_admin_is_no_tenant_unless_it_names_one(api: Api) -> None:
    acme = await api.tenant("acme")
    await api.attach(acme, "a.acme.com")
    alone = await api.call("GET", "/api/v1/account", token=ADMIN_TOKEN)
    assert alone.body["admin"] is True
    assert alone.body["tenant"] is None and alone.body["usage"] is None
    assert alone.body["limits"] == {"max_domains_per_tenant": 10, "max_domains_per_app": None}
    acting = await api.call(
        "GET", "/api/v1/account", token=ADMIN_TOKEN, headers={"X-Domaingate-Tenant": "acme"}
    )
    assert acting.body["admin"] is True
    assert acting.body["tenant"] == "acme"
    assert acting.body["usage"] == {"domains": 1, "apps": [{"app": "shop", "domains": 1}]}


async def test_a_wrong_or_revoked_token_is_401(api: Api) -> None:
    reply = await api.call("GET", "/api/v1/account", token="dgt_" + "0" * 64)
    assert reply.status == 401
    assert reply.code == "UNAUTHORIZED"


async def test_status_is_for_the_admin_token_only(api: Api) -> None:
    acme = await api.tenant("acme")
    reply = await api.call("GET", "/api/v1/status", token=acme)
    assert reply.status == 403
    assert reply.code == "FORBIDDEN"
    assert (await api.call("GET", "/api/v1/status")).status == 401


async def test_status_shows_the_lease_the_outbox_late_checks_and_counts(api: Api) -> None:
    acme = await api.tenant("acme")
    for name in ("a.acme.com", "b.acme.com", "c.acme.com"):
        await api.attach(acme, name)
    quiet = await api.call("GET", "/api/v1/status", token=ADMIN_TOKEN)
    assert quiet.status == 200
    assert quiet.body["reconciler"] == {
        "lease_held": False,
        "holder": None,
        "lease_expires_at": None,
        "lease_token": None,
        "last_check_at": None,
        "checks_overdue": 0,
    }
    assert quiet.body["outbox"] == {"backlog": 0, "oldest_at": None}
    assert quiet.body["counts"] == {
        "pending": 3,
        "verified": 0,
        "active": 0,
        "expiring": 0,
        "failed": 0,
    }

    sql(
        api.db_target,
        "INSERT INTO leases (name, holder, expires_at) VALUES ('reconciler', 'edge-1:42', ?)",
        (T0 + 30,),
    )
    sql(
        api.db_target, "UPDATE domains SET last_checked_at = ? WHERE hostname = 'b.acme.com'", (T0,)
    )
    await api.call("DELETE", "/api/v1/domains/a.acme.com", token=acme)  # a domain.removed event
    # The first checks were due 60 s after attach: 400 s later they are more than 300 s late.
    api.clock.advance(400)
    busy = await api.call("GET", "/api/v1/status", token=ADMIN_TOKEN)
    assert busy.body["reconciler"] == {
        "lease_held": False,  # it lapsed at T0 + 30
        "holder": "edge-1:42",
        "lease_expires_at": rfc3339(T0 + 30),
        "lease_token": 1,  # the first holder's
        "last_check_at": rfc3339(T0),
        "checks_overdue": 2,
    }
    assert busy.body["outbox"] == {"backlog": 1, "oldest_at": rfc3339(T0)}
    assert busy.body["counts"]["pending"] == 2
    sql(api.db_target, "UPDATE leases SET expires_at = ?", (T0 + 430,))
    held = await api.call("GET", "/api/v1/status", token=ADMIN_TOKEN)
    assert held.body["reconciler"]["lease_held"] is True


async def test_the_app_quota_counts_live_domains_of_the_app(api_factory: ApiFactory) -> None:
    api = await api_factory(max_domains_per_app=2)
    acme = await api.tenant("acme")
    globex = await api.tenant("globex")
    await api.attach(acme, "a.acme.com", app="web")
    await api.attach(acme, "b.acme.com", app="web")
    reply = await api.post_domain(acme, "c.acme.com", app="web")
    assert reply.status == 422
    assert reply.code == "QUOTA_EXCEEDED"
    assert reply.body["error"]["limit"] == 2
    assert "'web'" in reply.body["error"]["message"]
    # Another app of the tenant, and the same app name at another tenant, have their own caps.
    await api.attach(acme, "c.acme.com", app="shop")
    await api.attach(globex, "a.globex.com", app="globex-web")
    # A removed domain frees its slot.
    await api.call("DELETE", "/api/v1/domains/a.acme.com", token=acme)
    await api.attach(acme, "d.acme.com", app="web")


async def test_unset_the_app_quota_caps_nothing(api_factory: ApiFactory) -> None:
    api = await api_factory(max_domains_per_tenant=12)
    acme = await api.tenant("acme")
    for i in range(12):
        await api.attach(acme, f"d{i}.acme.com", app="web")


async def test_concurrent_attaches_to_one_app_stay_within_its_quota(
    api_factory: ApiFactory,
) -> None:
    api = await api_factory(max_domains_per_app=2)
    acme = await api.tenant("acme")
    replies = await asyncio.gather(
        *(api.post_domain(acme, f"race{i}.acme.com", app="web") for i in range(8))
    )
    assert sorted(r.status for r in replies) == [201, 201] + [422] * 6
    assert {r.code for r in replies if r.status == 422} == {"QUOTA_EXCEEDED"}
    live = sql(
        api.db_target, "SELECT count(*) FROM domains WHERE app = 'web' AND status != 'removed'"
    )
    assert live == [(2,)]


async def test_status_shows_each_jobs_last_run_and_flags_the_late(api: Api) -> None:
    quiet = await api.call("GET", "/api/v1/status", token=ADMIN_TOKEN)
    never = {"last_run_at": None, "last_ok_at": None, "last_error": None, "late": False}
    assert quiet.body["runs"] == [
        {"job": job, **never} for job in ("lease", "dns", "certs", "cleanup", "webhooks")
    ]

    sql(
        api.db_target,
        "INSERT INTO job_runs (job, last_run_at, last_ok_at, last_error) VALUES"
        " ('lease', ?, ?, NULL), ('dns', ?, ?, NULL), ('certs', ?, ?, 'OSError: disk gone')",
        (T0 + 80, T0 + 80, T0, T0, T0 + 50, T0 - 600),
    )
    # 100 s on: the DNS poll's row is older than three times 30 s; the certificate job (every
    # 60 s by default) ran 50 s ago and failed.
    api.clock.advance(100)
    runs = {
        run["job"]: run
        for run in (await api.call("GET", "/api/v1/status", token=ADMIN_TOKEN)).body["runs"]
    }
    assert runs["lease"] == {
        "job": "lease",
        "last_run_at": rfc3339(T0 + 80),
        "last_ok_at": rfc3339(T0 + 80),
        "last_error": None,
        "late": False,
    }
    assert runs["dns"]["late"] is True
    assert runs["certs"] == {
        "job": "certs",
        "last_run_at": rfc3339(T0 + 50),
        "last_ok_at": rfc3339(T0 - 600),
        "last_error": "OSError: disk gone",
        "late": False,
    }
    assert runs["cleanup"] == {"job": "cleanup", **never}
