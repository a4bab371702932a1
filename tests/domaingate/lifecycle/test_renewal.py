"""The renewal window by each certificate's own clock (`domaingate.lifecycle.renewal`), and what the
certificate planner makes of it: 6-, 45- and 90-day certificates at several ages, ACME Renewal
Information windows, and the EXPIRING_DAYS override. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from domaingate.lifecycle.certificates import plan_certs
from domaingate.lifecycle.renewal import CertFact, RenewalWindow, renewal_due_at
from domaingate.states import Status
from tests.conftest import T0
from tests.domaingate.lifecycle.test_planners import domain

NOW = T0
DAY = 86400.0
HOUR = 3600.0


def issued(lifetime_days: float, age: float, window: RenewalWindow | None = None) -> CertFact:
    """A certificate of `lifetime_days` issued `age` seconds before NOW."""
    not_before = NOW - age
    return CertFact(
        name="shop.acme.test",
        not_before=not_before,
        not_after=not_before + lifetime_days * DAY,
        issuer="R11",
        issuer_key="acme-v02.api.letsencrypt.org-directory",
        path=Path("/storage/shop.acme.test.crt"),
        renewal_window=window,
    )


def sixth_point(lifetime_days: float) -> float:
    """The age at which 1/6 of the lifetime is left."""
    return lifetime_days * DAY * 5 / 6


@pytest.mark.parametrize("lifetime", [6, 45, 90])
@pytest.mark.parametrize(
    ("label", "age", "overdue"),
    [
        ("just issued", lambda _days: 60.0, False),
        ("a third through", lambda days: days * DAY / 3, False),
        ("in Caddy's renewal third", lambda days: days * DAY * 0.7, False),
        ("just before the 1/6 point", lambda days: sixth_point(days) - 1, False),
        ("at the 1/6 point", sixth_point, True),
        ("just after the 1/6 point", lambda days: sixth_point(days) + 1, True),
        ("an hour before the end", lambda days: days * DAY - HOUR, True),
        ("expired", lambda days: days * DAY + DAY, True),
    ],
)
def test_active_turns_expiring_once_less_than_a_sixth_of_the_lifetime_is_left(
    lifetime: float, label: str, age: Callable[[float], float], overdue: bool
) -> None:
    cert = issued(lifetime, age(lifetime))
    due = renewal_due_at(cert, None)
    assert due == pytest.approx(cert.not_after - lifetime * DAY / 6)
    [change] = plan_certs([domain(Status.ACTIVE)], {cert.name: cert}, NOW, None)
    assert [m.target for m in change.moves] == ([Status.EXPIRING] if overdue else []), label
    assert (change.expires_at, change.renewal_due_at) == (cert.not_after, due)


def test_the_one_sixth_point_of_common_lifetimes() -> None:
    # 15 days of a 90-day certificate, 7.5 of a 45-day one, 1 day of a 6-day one.
    for lifetime, left in [(90, 15 * DAY), (45, 7.5 * DAY), (6, DAY)]:
        cert = issued(lifetime, 0)
        assert cert.not_after - renewal_due_at(cert, None) == pytest.approx(left)


def test_a_six_day_certificate_is_not_expiring_from_birth() -> None:
    # What the fixed 14-day window got wrong: every 6-day certificate was "expiring" at once.
    cert = issued(6, 60)
    [change] = plan_certs([domain(Status.VERIFIED)], {cert.name: cert}, NOW, None)
    assert [m.target for m in change.moves] == [Status.ACTIVE]


def test_an_ari_window_moved_into_the_past_makes_a_young_certificate_expiring() -> None:
    # A 90-day certificate 10 days old: its lifetime says fine, but the CA (a revocation ahead,
    # say) moved its renewal window to end an hour ago.
    window = RenewalWindow(start=NOW - DAY, end=NOW - HOUR)
    cert = issued(90, 10 * DAY, window)
    assert renewal_due_at(cert, None) == NOW - HOUR
    [change] = plan_certs([domain(Status.ACTIVE)], {cert.name: cert}, NOW, None)
    assert [m.target for m in change.moves] == [Status.EXPIRING]
    assert "renewal was due by" in (change.moves[0].message or "")
    # Verified straight to expiring: both events are sent.
    [change] = plan_certs([domain(Status.VERIFIED)], {cert.name: cert}, NOW, None)
    assert [m.target for m in change.moves] == [Status.ACTIVE, Status.EXPIRING]


def test_an_ari_window_still_open_changes_nothing_until_it_ends() -> None:
    window = RenewalWindow(start=NOW - HOUR, end=NOW + HOUR)
    cert = issued(90, 10 * DAY, window)
    [change] = plan_certs([domain(Status.ACTIVE)], {cert.name: cert}, NOW, None)
    assert (change.moves, change.renewal_due_at) == ((), NOW + HOUR)
    later = plan_certs([domain(Status.ACTIVE)], {cert.name: cert}, NOW + HOUR, None)
    assert [m.target for m in later[0].moves] == [Status.EXPIRING]


def test_an_ari_window_ending_after_the_one_sixth_point_does_not_postpone_it() -> None:
    cert = issued(90, 80 * DAY, RenewalWindow(start=NOW, end=NOW + 9 * DAY))
    assert renewal_due_at(cert, None) == pytest.approx(cert.not_after - 15 * DAY)
    [change] = plan_certs([domain(Status.ACTIVE)], {cert.name: cert}, NOW, None)
    assert [m.target for m in change.moves] == [Status.EXPIRING]


def test_a_renewed_certificate_makes_an_expiring_domain_active_again() -> None:
    renewed = issued(45, HOUR)
    [change] = plan_certs([domain(Status.EXPIRING)], {renewed.name: renewed}, NOW, None)
    assert [m.target for m in change.moves] == [Status.ACTIVE]
    # An ARI refresh that moves the window back into the future does the same.
    young = issued(90, 10 * DAY, RenewalWindow(start=NOW + 50 * DAY, end=NOW + 52 * DAY))
    [change] = plan_certs([domain(Status.EXPIRING)], {young.name: young}, NOW, None)
    assert [m.target for m in change.moves] == [Status.ACTIVE]


@pytest.mark.parametrize("lifetime", [6, 45, 90])
def test_expiring_days_replaces_the_rule_with_a_fixed_number_of_days(lifetime: float) -> None:
    past = RenewalWindow(start=NOW - DAY, end=NOW - HOUR)
    for window in (None, past):  # the ARI window is not read either
        cert = issued(lifetime, 60, window)
        assert renewal_due_at(cert, 3) == cert.not_after - 3 * DAY
        [change] = plan_certs([domain(Status.ACTIVE)], {cert.name: cert}, NOW, 3)
        # Issued a minute ago: even a 6-day certificate has more than 3 days left.
        assert change.moves == ()
        assert change.renewal_due_at == cert.not_after - 3 * DAY
        ending = issued(lifetime, lifetime * DAY - 2 * DAY, window)
        [change] = plan_certs([domain(Status.ACTIVE)], {cert.name: ending}, NOW, 3)
        assert [m.target for m in change.moves] == [Status.EXPIRING]
    # A long override makes even a fresh short certificate expiring, as the old default did.
    fresh = issued(6, 60)
    [change] = plan_certs([domain(Status.VERIFIED)], {fresh.name: fresh}, NOW, 14)
    assert [m.target for m in change.moves] == [Status.ACTIVE, Status.EXPIRING]


def test_a_renewal_window_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match="ends after it starts"):
        RenewalWindow(start=NOW, end=NOW)
