"""The DNS check against real knot servers on 127.0.0.1: one zone set per scenario."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import pytest

from domaingate.dns.checker import DnsChecker, Expectation
from domaingate.dns.findings import CheckReport, Code
from domaingate.hostnames import classify
from domaingate.settings import Listen
from tests.support.knot import Knot, knot_fixture

TARGET = "app.apps.test"
TOKEN = "dg_" + "0123456789abcdef" * 4
OTHER_TOKEN = "dg_" + "f" * 64
EDGE4 = ("192.0.2.10",)
EDGE6 = ("2001:db8::10",)
# The platform's own zone, served beside each tenant zone so CNAME targets resolve.
PLATFORM = {"apps.test": "app A 192.0.2.10\napp AAAA 2001:db8::10\n"}


def expect(hostname: str, *, require_txt: bool = False, edge_ipv6: bool = False) -> Expectation:
    return Expectation(
        hostname=hostname,
        kind=classify(hostname).kind,
        cname_target=TARGET,
        txt_name=f"_domaingate.{hostname}",
        txt_value=TOKEN,
        require_txt=require_txt,
        edge_ipv4=EDGE4,
        edge_ipv6=EDGE6 if edge_ipv6 else (),
    )


def checker(*resolvers: Listen, timeout: float = 3.0) -> DnsChecker:
    return DnsChecker(resolvers, allowed_cas=("letsencrypt.org",), timeout=timeout)


pytestmark = pytest.mark.knot

Factory = Callable[[Mapping[str, str]], Knot]


async def run(knot: Knot, expectation: Expectation) -> CheckReport:
    return await checker(knot.listen).check(expectation)


def codes(report: CheckReport) -> dict[str, Code | None]:
    return {finding.check: finding.code for finding in report.findings}


async def test_correct_cname_passes_and_names_the_provider(knot_factory: Factory) -> None:
    knot = knot_factory(
        {
            **PLATFORM,
            "acme.test": "@ NS ns1.cloudflare.com.\n@ NS ns2.cloudflare.com.\n"
            f"shop CNAME {TARGET}.\n",
        }
    )
    report = await run(knot, expect("shop.acme.test"))
    assert report.ok, report.as_dict()
    assert report.error is None
    assert not report.transient
    assert [f.check for f in report.findings] == ["cname", "caa", "ns"]
    assert report.provider == "Cloudflare"
    assert "Cloudflare" in report.findings[-1].message


async def test_provider_unknown_for_unlisted_name_servers(knot_factory: Factory) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": f"shop CNAME {TARGET}.\n"})
    report = await run(knot, expect("shop.acme.test"))
    assert report.ok
    assert report.provider is None


async def test_cname_to_another_target(knot_factory: Factory) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": "shop CNAME elsewhere.acme.test.\n"})
    report = await run(knot, expect("shop.acme.test"))
    assert not report.ok
    assert not report.transient
    error = report.error
    assert error is not None
    assert error.code is Code.CNAME_WRONG_TARGET
    assert "elsewhere.acme.test" in error.message
    assert TARGET in error.message


async def test_cname_chain_of_two_hops_across_zones(knot_factory: Factory) -> None:
    knot = knot_factory(
        {
            **PLATFORM,
            "acme.test": "shop CNAME edge.cdn.test.\n",
            "cdn.test": f"edge CNAME {TARGET}.\n",
        }
    )
    report = await run(knot, expect("shop.acme.test"))
    assert report.ok, report.as_dict()
    assert "edge.cdn.test" in report.findings[0].message


async def test_cname_loop_is_a_wrong_target(knot_factory: Factory) -> None:
    knot = knot_factory(
        {
            **PLATFORM,
            "acme.test": "shop CNAME loop.cdn.test.\n",
            "cdn.test": "loop CNAME shop.acme.test.\n",
        }
    )
    report = await run(knot, expect("shop.acme.test"))
    assert codes(report)["cname"] is Code.CNAME_WRONG_TARGET
    assert report.error is not None
    assert "loops" in report.error.message


async def test_dangling_cname_is_a_wrong_target(knot_factory: Factory) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": "shop CNAME gone.nowhere.test.\n"})
    report = await run(knot, expect("shop.acme.test"))
    assert codes(report)["cname"] is Code.CNAME_WRONG_TARGET


async def test_name_without_records_misses_its_cname(knot_factory: Factory) -> None:
    # The TXT record below makes shop.acme.test exist with no records of its own (NODATA).
    knot = knot_factory({**PLATFORM, "acme.test": f'_domaingate.shop TXT "{TOKEN}"\n'})
    report = await run(knot, expect("shop.acme.test"))
    error = report.error
    assert error is not None
    assert error.code is Code.CNAME_MISSING
    assert f"name shop.acme.test, value {TARGET}" in error.message


async def test_address_records_instead_of_cname(knot_factory: Factory) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": "shop A 198.51.100.7\n"})
    report = await run(knot, expect("shop.acme.test"))
    error = report.error
    assert error is not None
    assert error.code is Code.CNAME_MISSING
    assert "198.51.100.7" in error.message


async def test_missing_name_is_nxdomain(knot_factory: Factory) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": "www A 192.0.2.10\n"})
    report = await run(knot, expect("shop.acme.test"))
    error = report.error
    assert error is not None
    assert error.code is Code.NXDOMAIN
    assert TARGET in error.message
    assert not report.transient


@pytest.mark.parametrize(
    ("records", "code"),
    [
        (f'_domaingate.shop TXT "{TOKEN}"\n', None),
        # A long value split into character-strings still counts as one value.
        (f'_domaingate.shop TXT "{TOKEN[:20]}" "{TOKEN[20:]}"\n', None),
        (f'_domaingate.shop TXT "{OTHER_TOKEN}"\n', Code.TOKEN_MISMATCH),
        ('_domaingate.shop TXT "v=spf1 -all"\n', Code.TOKEN_MISMATCH),
        ("", Code.MISSING_TXT),
    ],
    ids=["right", "split", "other-token", "unrelated", "missing"],
)
async def test_txt_token(knot_factory: Factory, records: str, code: Code | None) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": f"shop CNAME {TARGET}.\n{records}"})
    report = await run(knot, expect("shop.acme.test", require_txt=True))
    assert codes(report)["txt"] is code
    assert report.ok is (code is None)
    if code is not None:
        assert report.error is not None
        assert report.error.code is code
        assert f"_domaingate.shop.acme.test, value {TOKEN}" in report.error.message


async def test_txt_not_checked_for_subdomain_unless_required(knot_factory: Factory) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": f"shop CNAME {TARGET}.\n"})
    report = await run(knot, expect("shop.acme.test"))
    assert "txt" not in codes(report)


APEX_TXT = f'_domaingate TXT "{TOKEN}"\n'


@pytest.mark.parametrize(
    ("records", "edge_ipv6", "code", "mentioned"),
    [
        ("@ A 192.0.2.10\n", False, None, "192.0.2.10"),
        ("@ A 192.0.2.10\n@ AAAA 2001:db8::10\n", True, None, "2001:db8::10"),
        ("@ A 192.0.2.10\n", True, None, "192.0.2.10"),
        ("@ A 192.0.2.10\n@ A 198.51.100.7\n", False, Code.CONFLICTING_A, "198.51.100.7"),
        ("@ A 192.0.2.10\n@ AAAA 2001:db8::99\n", False, Code.CONFLICTING_A, "2001:db8::99"),
        ("@ A 198.51.100.7\n", False, Code.A_WRONG_TARGET, "192.0.2.10"),
        ("@ A 104.16.1.1\n@ A 172.67.2.2\n", False, Code.CNAME_PROXIED, "DNS only"),
        ("www A 192.0.2.10\n", False, Code.A_WRONG_TARGET, "A record: name acme.test"),
    ],
    ids=["right", "right-v6", "v6-optional", "extra-a", "extra-aaaa", "elsewhere", "cf", "none"],
)
async def test_apex_addresses(
    knot_factory: Factory, records: str, edge_ipv6: bool, code: Code | None, mentioned: str
) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": APEX_TXT + records})
    report = await run(knot, expect("acme.test", edge_ipv6=edge_ipv6))
    assert [f.check for f in report.findings] == ["address", "txt", "caa", "ns"]
    finding = report.findings[0]
    assert finding.code is code, finding.message
    assert mentioned in finding.message
    assert report.ok is (code is None)


async def test_apex_needs_txt(knot_factory: Factory) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": "@ A 192.0.2.10\n"})
    report = await run(knot, expect("acme.test"))
    assert codes(report) == {"address": None, "txt": Code.MISSING_TXT, "caa": None, "ns": None}
    assert report.error is not None
    assert report.error.code is Code.MISSING_TXT


async def test_subdomain_on_cloudflare_proxy(knot_factory: Factory) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": "shop A 104.16.1.1\nshop AAAA 2606:4700::1\n"})
    report = await run(knot, expect("shop.acme.test"))
    error = report.error
    assert error is not None
    assert error.code is Code.CNAME_PROXIED
    assert '"DNS only"' in error.message


@pytest.mark.parametrize(
    ("caa", "code"),
    [
        ('@ CAA 0 issue "sectigo.com"\n', Code.CAA_FORBIDS_ISSUANCE),
        ('@ CAA 0 issue ";"\n', Code.CAA_FORBIDS_ISSUANCE),
        ('@ CAA 0 issue "letsencrypt.org; validationmethods=http-01"\n', None),
        ('@ CAA 0 issue "sectigo.com"\n@ CAA 0 issue "letsencrypt.org"\n', None),
        ('@ CAA 0 iodef "mailto:security@acme.test"\n', None),
        # The nearest non-empty set wins: the name's own set overrides the parent's.
        ('@ CAA 0 issue "sectigo.com"\nshop CAA 0 issue "letsencrypt.org"\n', None),
        (
            '@ CAA 0 issue "letsencrypt.org"\nshop CAA 0 issue "sectigo.com"\n',
            Code.CAA_FORBIDS_ISSUANCE,
        ),
    ],
    ids=["other-ca", "nobody", "ours", "both", "iodef-only", "child-allows", "child-forbids"],
)
async def test_caa(knot_factory: Factory, caa: str, code: Code | None) -> None:
    # shop holds an address, not a CNAME: a CAA lookup at a CNAME would follow it to the target.
    knot = knot_factory({**PLATFORM, "acme.test": f"shop A 192.0.2.10\n{caa}"})
    report = await run(knot, expect("shop.acme.test"))
    finding = report.findings[1]
    assert finding.check == "caa"
    assert finding.code is code, finding.message
    if code is not None:
        assert 'CAA 0 issue "letsencrypt.org"' in finding.message


async def test_caa_found_through_the_cname(knot_factory: Factory) -> None:
    knot = knot_factory(
        {
            "apps.test": 'app A 192.0.2.10\napp CAA 0 issue "sectigo.com"\n',
            "acme.test": f"shop CNAME {TARGET}.\n",
        }
    )
    report = await run(knot, expect("shop.acme.test"))
    assert codes(report)["caa"] is Code.CAA_FORBIDS_ISSUANCE


async def test_resolvers_that_disagree(knot_factory: Factory) -> None:
    right = knot_factory({**PLATFORM, "acme.test": f"shop CNAME {TARGET}.\n"})
    wrong = knot_factory({**PLATFORM, "acme.test": "shop CNAME old-host.acme.test.\n"})
    report = await checker(right.listen, wrong.listen).check(expect("shop.acme.test"))
    error = report.error
    assert error is not None
    assert error.code is Code.RESOLVER_DISAGREEMENT
    assert report.transient
    assert str(right.listen) in error.message
    assert str(wrong.listen) in error.message
    assert "old-host.acme.test" in error.message


async def test_resolvers_that_agree_on_a_failure(knot_factory: Factory) -> None:
    zones = {**PLATFORM, "acme.test": "shop CNAME old-host.acme.test.\n"}
    first, second = knot_factory(zones), knot_factory(zones)
    report = await checker(first.listen, second.listen).check(expect("shop.acme.test"))
    assert report.error is not None
    assert report.error.code is Code.CNAME_WRONG_TARGET
    assert not report.transient


async def test_silent_resolver_times_out_within_budget(
    knot_factory: Factory, blackhole: Listen
) -> None:
    # Everything is right at knot: the silent resolver is the only thing wrong.
    knot = knot_factory(
        {**PLATFORM, "acme.test": f'shop CNAME {TARGET}.\n_domaingate.shop TXT "{TOKEN}"\n'}
    )
    budget = 1.0
    started = time.monotonic()
    report = await checker(knot.listen, blackhole, timeout=budget).check(
        expect("shop.acme.test", require_txt=True)
    )
    elapsed = time.monotonic() - started
    assert elapsed < budget + 0.5
    error = report.error
    assert error is not None
    assert error.code is Code.DNS_TIMEOUT
    assert str(blackhole) in error.message
    assert report.transient
    assert {f.code for f in report.findings if not f.ok} == {Code.DNS_TIMEOUT}


async def test_refusing_resolver_is_a_dns_error(knot_factory: Factory) -> None:
    # knot answers REFUSED for names outside the zones it serves.
    knot = knot_factory(PLATFORM)
    report = await run(knot, expect("shop.acme.example"))
    assert report.error is not None
    assert report.error.code is Code.DNS_ERROR
    assert "REFUSED" in report.error.message
    assert report.transient


async def test_definitive_failure_beats_a_silent_resolver(
    knot_factory: Factory, blackhole: Listen
) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": "shop CNAME old-host.acme.test.\n"})
    report = await checker(knot.listen, blackhole, timeout=1.0).check(expect("shop.acme.test"))
    assert report.error is not None
    assert report.error.code is Code.CNAME_WRONG_TARGET
    assert not report.transient


async def test_zone_change_is_seen_by_the_next_check(knot_factory: Factory) -> None:
    knot = knot_factory({**PLATFORM, "acme.test": "shop CNAME old-host.acme.test.\n"})
    assert not (await run(knot, expect("shop.acme.test"))).ok
    knot.set_zone("acme.test", f"shop CNAME {TARGET}.\n")
    assert (await run(knot, expect("shop.acme.test"))).ok
    # A zone added at run time is served too, with its parent's delegation.
    assert (await run(knot, expect("www.new.test"))).error is not None
    knot.set_zone("new.test", f"www CNAME {TARGET}.\n")
    assert (await run(knot, expect("www.new.test"))).ok


served = knot_fixture({**PLATFORM, "acme.test": f"shop CNAME {TARGET}.\n"}, scope="module")


async def test_module_scoped_knot_fixture(served: Knot) -> None:
    assert (await run(served, expect("shop.acme.test"))).ok
