"""Findings and reports: which error a report shows, what counts as transient, the JSON shape."""

from __future__ import annotations

import json

import pytest

from domaingate.dns.checker import DnsChecker
from domaingate.dns.findings import PRIORITY, TRANSIENT, CheckReport, Code, Finding
from domaingate.settings import Listen, load_settings


def bad(check: str, code: Code) -> Finding:
    return Finding(check=check, ok=False, code=code, message=f"fix {check}")


def good(check: str) -> Finding:
    return Finding(check=check, ok=True, code=None, message=f"{check} is fine")


def report(*findings: Finding) -> CheckReport:
    return CheckReport(hostname="shop.acme.test", findings=findings, provider=None)


def test_codes_are_the_spec_values() -> None:
    assert {code.value for code in Code} == {
        "missing_txt", "token_mismatch", "cname_missing", "cname_wrong_target", "cname_proxied",
        "conflicting_a", "a_wrong_target", "caa_forbids_issuance", "nxdomain", "dns_timeout",
        "dns_error", "resolver_disagreement", "dns_moved",
    }  # fmt: skip
    assert {Code.DNS_TIMEOUT, Code.DNS_ERROR, Code.RESOLVER_DISAGREEMENT} == TRANSIENT
    assert sorted(PRIORITY) == sorted(Code)
    # Every definitive code ranks before every transient one.
    assert all(code not in TRANSIENT for code in PRIORITY[: len(PRIORITY) - len(TRANSIENT)])


def test_all_ok() -> None:
    result = report(good("cname"), good("caa"), good("ns"))
    assert result.ok
    assert result.error is None
    assert not result.transient


def test_definitive_error_wins_over_transient() -> None:
    result = report(bad("cname", Code.DNS_TIMEOUT), bad("caa", Code.CAA_FORBIDS_ISSUANCE))
    assert result.error == bad("caa", Code.CAA_FORBIDS_ISSUANCE)
    assert not result.transient


def test_only_transient_failures() -> None:
    result = report(bad("cname", Code.DNS_ERROR), good("caa"), bad("txt", Code.DNS_TIMEOUT))
    assert result.transient
    assert result.error is not None
    assert result.error.code is Code.DNS_ERROR


def test_priority_is_stable() -> None:
    result = report(bad("txt", Code.MISSING_TXT), bad("cname", Code.CNAME_WRONG_TARGET))
    assert result.error is not None
    assert result.error.check == "cname"
    twice = report(bad("caa", Code.DNS_TIMEOUT), bad("txt", Code.DNS_TIMEOUT))
    assert twice.error is not None
    assert twice.error.check == "caa"


def test_finding_code_matches_ok() -> None:
    with pytest.raises(ValueError):
        Finding(check="txt", ok=True, code=Code.MISSING_TXT, message="x")
    with pytest.raises(ValueError):
        Finding(check="txt", ok=False, code=None, message="x")


def test_as_dict_is_json_ready() -> None:
    result = CheckReport(
        hostname="shop.acme.test",
        findings=(good("cname"), bad("txt", Code.MISSING_TXT)),
        provider="Cloudflare",
    )
    data = json.loads(json.dumps(result.as_dict()))
    assert data == {
        "hostname": "shop.acme.test",
        "ok": False,
        "transient": False,
        "provider": "Cloudflare",
        "error": {"check": "txt", "ok": False, "code": "missing_txt", "message": "fix txt"},
        "findings": [
            {"check": "cname", "ok": True, "code": None, "message": "cname is fine"},
            {"check": "txt", "ok": False, "code": "missing_txt", "message": "fix txt"},
        ],
    }


def test_checker_from_settings() -> None:
    settings = load_settings(
        env={"DOMAINGATE_RESOLVERS": "127.0.0.1:5353,::1", "DOMAINGATE_ALLOWED_CAS": "pki.goog"}
    )
    checker = DnsChecker.from_settings(settings)
    assert checker.resolvers == (Listen("127.0.0.1", 5353), Listen("::1", 53))
    assert checker.allowed_cas == ("pki.goog",)
    assert checker.timeout == settings.dns_timeout


@pytest.mark.parametrize(
    ("resolvers", "timeout"),
    [([], 5.0), ([Listen("dns.example", 53)], 5.0), ([Listen("127.0.0.1", 53)], 0.0)],
)
def test_checker_rejects_bad_arguments(resolvers: list[Listen], timeout: float) -> None:
    with pytest.raises(ValueError):
        DnsChecker(resolvers, allowed_cas=("letsencrypt.org",), timeout=timeout)
