"""Resolvers that answer garbage: every kind of broken answer is a transient dns_error."""

from __future__ import annotations

import pytest

from domaingate.dns.checker import DnsChecker, Expectation
from domaingate.dns.findings import Code
from domaingate.hostnames import Kind
from tests.support.blackhole import Blackhole

EXPECTATION = Expectation(
    hostname="shop.acme.test",
    kind=Kind.SUBDOMAIN,
    cname_target="app.apps.test",
    txt_name="_domaingate.shop.acme.test",
    txt_value="dg_" + "0" * 64,
    require_txt=True,
    edge_ipv4=(),
    edge_ipv6=(),
)


@pytest.mark.parametrize(
    "reply",
    # All-ones sets the truncation bit too: the TCP retry then finds nobody listening.
    [b"\x00garbage", bytes(12), b"\xff" * 40],
    ids=["short", "header-only-wrong-id", "truncated-junk"],
)
async def test_garbage_answers_are_a_dns_error(reply: bytes) -> None:
    broken = Blackhole(reply=reply)
    try:
        report = await DnsChecker(
            [broken.listen], allowed_cas=["letsencrypt.org"], timeout=1.0
        ).check(EXPECTATION)
    finally:
        broken.close()
    assert report.error is not None
    assert report.error.code is Code.DNS_ERROR
    assert report.transient
