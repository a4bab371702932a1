"""Facts with one source, checked where two parts of the code must agree on them: the error codes
(the error classes and the OpenAPI document), the DNS label rule (the API, its document and the
settings), the tenant name rule, the ownership TXT record, and the request body cap."""

from __future__ import annotations

import inspect
import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from domaingate import errors, wire
from domaingate.apps import check_app
from domaingate.errors import DomaingateError, InvalidRequest, PayloadTooLarge
from domaingate.hostnames import Kind, parse
from domaingate.instructions import expectation_for, expectation_unattached, instructions
from domaingate.models import Domain
from domaingate.settings import SettingsError, load_settings
from domaingate.states import ALLOWED, Status
from domaingate.store import statuses
from domaingate.store.migrations import Dialect, migrations
from domaingate.store.tenants import check_tenant_name
from gateway.api.inputs import MAX_BODY
from gateway.api.openapi import DOCUMENT
from tests.conftest import T0, Api, make_settings
from tests.support.domains import make_domain

LABELS = st.text(alphabet="az09-_", max_size=70)


def documented_codes() -> list[str]:
    error = DOCUMENT["components"]["schemas"]["Error"]["properties"]["error"]
    codes: list[str] = error["properties"]["code"]["enum"]
    return codes


def test_every_error_class_is_in_the_openapi_document_and_nothing_else() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if inspect.isclass(value) and issubclass(value, DomaingateError)
    ]
    assert len(classes) > 10
    codes = documented_codes()
    assert len(codes) == len(set(codes))
    assert set(codes) == {cls.code for cls in classes}


def test_every_error_class_has_its_own_code() -> None:
    # InvalidRequest is the base's code made explicit; every other class names one error.
    owners: dict[str, type[DomaingateError]] = {}
    for cls in errors.error_classes():
        if cls is InvalidRequest:
            continue
        assert cls.code not in owners, (cls, owners.get(cls.code))
        owners[cls.code] = cls


def app_pattern() -> str:
    pattern: str = DOCUMENT["components"]["schemas"]["AttachRequest"]["properties"]["app"][
        "pattern"
    ]
    return pattern


def accepted_by_check_app(label: str) -> bool:
    try:
        check_app(label)
    except DomaingateError:
        return False
    return True


def accepted_as_zone(label: str) -> bool:
    try:
        # Through the environment: keyword overrides skip the parsing under test.
        load_settings(env={"DOMAINGATE_PLATFORM_ZONE": label})
    except SettingsError:
        return False
    return True


@given(label=LABELS)
@example(label="a" * 63)
@example(label="a" * 64)
@example(label="a-b")
@example(label="-ab")
@example(label="ab-")
@example(label="a_b")
def test_the_label_rule_is_one_rule(label: str) -> None:
    api = accepted_by_check_app(label)
    assert (re.search(app_pattern(), label) is not None) == api
    assert accepted_as_zone(label) == api


@given(name=LABELS)
@example(name="a" * 64)
@example(name="a" * 65)
@example(name="a_b")
def test_the_tenant_name_rule_is_one_rule(name: str) -> None:
    header = next(
        parameter
        for parameter in DOCUMENT["paths"]["/api/v1/domains"]["get"]["parameters"]
        if parameter["name"] == "X-Domaingate-Tenant"
    )
    try:
        check_tenant_name(name)
        accepted = True
    except DomaingateError:
        accepted = False
    assert (re.search(header["schema"]["pattern"], name) is not None) == accepted


def attached(name: str, kind: Kind, method: str) -> Domain:
    return make_domain(now=T0, hostname=name, kind=kind, method=method)


@pytest.mark.parametrize("raw", ["shop.acme.com", "acme.com"])
def test_the_txt_record_is_named_once(raw: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "x.db")
    host = parse(raw, settings.reserved_zones)
    domain = attached(host.name, host.kind, "txt")
    checked = expectation_for(domain, settings)
    # A name not attached yet is checked for the same records, without the token it lacks.
    assert expectation_unattached(host, domain.app, settings) == replace(
        checked, txt_value="", require_txt=False
    )
    [told] = [r for r in instructions(domain, settings)["records"] if r["type"] == "TXT"]
    assert (told["name"], told["value"]) == (checked.txt_name, checked.txt_value)
    shown = wire.domain_json(domain, settings, T0)["txt_record"]
    assert (shown["name"], shown["value"]) == (checked.txt_name, checked.txt_value)
    assert checked.txt_name == f"{settings.txt_prefix}.{host.name}"


def test_the_body_cap_is_told_in_the_unit_it_is_set_in() -> None:
    assert PayloadTooLarge(MAX_BODY).message.endswith(f" {MAX_BODY // 1024} KiB")
    assert PayloadTooLarge(64 * 1024).message == "the request body is larger than 64 KiB"
    assert PayloadTooLarge(1000).message == "the request body is larger than 1000 bytes"


async def test_a_body_over_the_cap_is_refused_with_the_cap(api: Api) -> None:
    token = await api.tenant("acme")
    reply = await api.call(
        "POST",
        "/api/v1/domains",
        token=token,
        data=b"{" + b" " * MAX_BODY + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 413
    assert isinstance(reply.body, dict)
    assert reply.body == PayloadTooLarge(MAX_BODY).body()


def test_the_sql_status_sets_are_the_states_sets() -> None:
    assert statuses.HELD == "('verified', 'active', 'expiring')"
    assert {Status(value) for value in re.findall(r"'(\w+)'", statuses.HELD)} == ALLOWED
    assert statuses.CERTIFIED == "('active', 'expiring')"
    assert statuses.UNPROVEN == "('pending', 'failed')"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_schemas_status_lists_are_the_states(dialect: Dialect) -> None:
    """The schema's CHECK names every status, and its partial unique index of held claims the
    gate's allowed statuses: written once in sql/, tied to `states` here."""
    schema = "\n".join(sql for _, _, sql in migrations(dialect))
    lists = {
        frozenset(re.findall(r"'(\w+)'", found))
        for found in re.findall(r"status IN \(([^)]*)\)", schema)
    }
    assert frozenset(status.value for status in Status) in lists
    assert frozenset(status.value for status in ALLOWED) in lists
    assert lists <= {
        frozenset(status.value for status in Status),
        frozenset(status.value for status in ALLOWED),
    }
