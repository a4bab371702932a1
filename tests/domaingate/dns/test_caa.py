"""CAA evaluation (RFC 8659), without DNS."""

from __future__ import annotations

import pytest

from domaingate.dns.caa import CaaRecord, candidate_names, evaluate, issuer_domain

LE = ("letsencrypt.org",)


@pytest.mark.parametrize(
    ("value", "issuer"),
    [
        ("letsencrypt.org", "letsencrypt.org"),
        ("LetsEncrypt.ORG", "letsencrypt.org"),
        (" letsencrypt.org ; accounturi=https://acme/acct/1", "letsencrypt.org"),
        ("letsencrypt.org.", "letsencrypt.org"),
        (";", ""),
        ("", ""),
        ("not a domain", ""),
        ("lets..encrypt", ""),
    ],
)
def test_issuer_domain(value: str, issuer: str) -> None:
    assert issuer_domain(value) == issuer


def test_candidate_names_climb_to_the_top_label() -> None:
    assert candidate_names("a.shop.Acme.test.") == [
        "a.shop.acme.test",
        "shop.acme.test",
        "acme.test",
        "test",
    ]


@pytest.mark.parametrize(
    ("records", "allowed"),
    [
        ([CaaRecord(0, "issue", "letsencrypt.org")], True),
        ([CaaRecord(0, "ISSUE", "letsencrypt.org; validationmethods=dns-01")], True),
        ([CaaRecord(0, "issue", "sectigo.com"), CaaRecord(0, "issue", "letsencrypt.org")], True),
        ([CaaRecord(0, "issue", "sectigo.com")], False),
        ([CaaRecord(0, "issue", ";")], False),
        ([CaaRecord(0, "issue", "letsencrypt.org.evil.example")], False),
        # Only issue restricts ordinary names; issuewild and iodef alone permit anyone.
        ([CaaRecord(0, "issuewild", "sectigo.com")], True),
        ([CaaRecord(0, "iodef", "mailto:sec@acme.test")], True),
        ([CaaRecord(0, "issuewild", ";"), CaaRecord(0, "issue", "letsencrypt.org")], True),
        # Unknown properties are ignored unless marked critical.
        ([CaaRecord(0, "future", "x"), CaaRecord(0, "issue", "letsencrypt.org")], True),
        ([CaaRecord(128, "future", "x"), CaaRecord(0, "issue", "letsencrypt.org")], False),
        ([CaaRecord(128, "issue", "letsencrypt.org")], True),
    ],
)
def test_evaluate(records: list[CaaRecord], allowed: bool) -> None:
    assert evaluate("acme.test", records, LE).allowed is allowed


def test_forbidding_message_names_the_record_to_add() -> None:
    verdict = evaluate("acme.test", [CaaRecord(0, "issue", "sectigo.com")], LE)
    assert "allow only sectigo.com" in verdict.message
    assert 'acme.test. CAA 0 issue "letsencrypt.org"' in verdict.message


def test_empty_issuer_forbids_everyone() -> None:
    verdict = evaluate("acme.test", [CaaRecord(0, "issue", ";")], LE)
    assert not verdict.allowed
    assert "forbid every certificate authority" in verdict.message


def test_critical_unknown_property_says_to_remove_it() -> None:
    verdict = evaluate("acme.test", [CaaRecord(128, "tbs", "x")], LE)
    assert not verdict.allowed
    assert "Remove that record" in verdict.message


def test_any_allowed_ca_is_enough() -> None:
    records = [CaaRecord(0, "issue", "pki.goog")]
    assert evaluate("acme.test", records, ("letsencrypt.org", "pki.goog")).allowed
    assert not evaluate("acme.test", records, LE).allowed


def test_no_configured_ca_is_not_judged() -> None:
    assert evaluate("acme.test", [CaaRecord(0, "issue", "sectigo.com")], ()).allowed
