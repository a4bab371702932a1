"""Properties of `/route` (Caddy's forward_auth): whatever X-Forwarded-Host values arrive, it
names an app and its upstream only for one host that is allowed, with or without its port, and
answers 404 otherwise, never a 5xx."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from domaingate.hostnames import gate_key
from tests.conftest import Api, Client, raw_http
from tests.hardening.test_gate_properties import (
    FAST,
    NAMES,
    Population,
    lookalikes,
    no_gate_errors,
    one_or_several,
    populate,
)


@pytest.fixture
async def population(api: Api) -> Population:
    return await populate(api)


def routed_name(value: str) -> str | None:
    """The host Caddy means by one X-Forwarded-Host: `host[:port]`, blanks around it ignored,
    the host then read as /tls-ask reads a name."""
    value = value.strip(" \t")
    host, colon, port = value.rpartition(":")
    if colon and port.isascii() and port.isdigit() and len(port) <= 5:
        value = host
    return gate_key(value)


def expected_route(population: Population, values: list[str]) -> dict[str, str] | None:
    """The oracle: the app headers for one forwarded host that is allowed, else None (404)."""
    name = routed_name(values[0]) if len(values) == 1 else None
    app = population.allowed.get(name) if name is not None else None
    if app is None:
        return None
    return {"X-Domaingate-App": app, "X-Domaingate-Upstream": f"{app}.internal:80"}


PORTS = ("", ":443", ":8443", ":1", ":65535", ":99999", ":", ":0443", ":44a", ":443:443", ". :443")


@st.composite
def forwarded_hosts(draw: st.DrawFn, names: tuple[str, ...]) -> str:
    host = draw(
        st.one_of(
            lookalikes(names),
            st.text(string.ascii_letters + string.digits + string.punctuation + " ", max_size=20),
            st.ip_addresses().map(lambda ip: f"[{ip}]" if ip.version == 6 else str(ip)),
        )
    )
    pad = draw(st.sampled_from(("", " ", "\t")))
    return pad + host + draw(st.sampled_from(PORTS)) + pad


def header_safe(value: str) -> bool:
    """What aiohttp's client will send: no control character but the tab (the raw test sends the
    rest)."""
    return all(char == "\t" or (char >= " " and char != "\x7f") for char in value)


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(
    hosts=one_or_several(forwarded_hosts(NAMES) | forwarded_hosts(("shop.acme.com",))).filter(
        lambda hosts: all(map(header_safe, hosts))
    )
)
@example(hosts=["SHOP.acme.com.:443"])
@example(hosts=["[shop.acme.com]:443"])
@example(hosts=["shop.acme.com:443", "shop.acme.com:443"])
@example(hosts=["k.acme.com", "blog.acme.com"])
async def test_route_through_a_client(
    population: Population, internal: Client, caplog: pytest.LogCaptureFixture, hosts: list[str]
) -> None:
    headers = [("X-Forwarded-Host", host) for host in hosts]
    async with internal.get("/route", headers=headers) as response:
        found = {k: v for k, v in response.headers.items() if k.startswith("X-Domaingate-")}
        expected = expected_route(population, hosts)
        assert (response.status, found) == ((200, expected) if expected else (404, {})), hosts
    no_gate_errors(caplog)


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(
    values=one_or_several(
        st.one_of(forwarded_hosts(NAMES).map(str.encode), st.binary(max_size=30)).map(
            lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"")
        )
    )
)
@example(values=[b"shop.acme.com:443"])
@example(values=[b"\xe2\x84\xaa.acme.com"])
@example(values=[b"shop.acme.com\x00"])
async def test_route_with_any_bytes_in_the_header(
    population: Population, internal: Client, caplog: pytest.LogCaptureFixture, values: list[bytes]
) -> None:
    """Header bytes as a client may send them; a malformed header may be refused (400)."""
    lines = b"".join(b"X-Forwarded-Host: " + value + b"\r\n" for value in values)
    request = b"GET /route HTTP/1.1\r\nHost: gate\r\n" + lines + b"Connection: close\r\n\r\n"
    status, answer = await raw_http(internal, request)
    head = answer.split(b"\r\n\r\n", 1)[0].lower() + b"\r\n"
    expected = expected_route(population, [value.decode("latin-1") for value in values])
    if expected is None:
        assert status in (400, 404) and b"x-domaingate-" not in head
    else:
        assert status == 200
        for name, value in expected.items():
            assert f"{name}: {value}\r\n".lower().encode() in head
    no_gate_errors(caplog)
