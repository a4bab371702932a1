"""Properties of the gate's `/tls-ask`: whatever bytes arrive, it says 200 only for one name that
is allowed in the database (verified, active, expiring), read exactly as Caddy sends it; every
other name, look-alikes of allowed ones included, is denied, never with a 5xx and never by
crashing into the fail-closed path. The database, the oracles and the strategies here also
serve test_route_properties.py."""

from __future__ import annotations

import codecs
import string
import urllib.parse
from dataclasses import dataclass
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from domaingate.hostnames import gate_key, normalize
from tests.conftest import Api, Client, gate_synced, raw_get, set_status, sql

# The fixtures hold one database for all of a test's examples; no example writes to it.
FAST = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
ALLOWED_STATUSES = ("verified", "active", "expiring")
# name as typed → (tenant, app, status). A live name's look-alikes sit beside it in other states.
DOMAINS = {
    "shop.acme.com": ("acme", "web", "verified"),
    "acme.com": ("acme", "web", "active"),
    "k.acme.com": ("acme", "kelvin", "expiring"),
    "shop.b\u00fccher.de": ("acme", "books", "active"),
    "apple.com": ("acme", "fruit", "verified"),
    "a-1.b2.example.org": ("acme", "web", "verified"),
    "a" * 63 + ".acme.com": ("acme", "long", "active"),
    "blog.acme.com": ("globex", "blog", "pending"),
    "old.acme.com": ("globex", "blog", "failed"),
    "gone.acme.com": ("globex", "blog", "removed"),
    "\u0430pple.com": ("globex", "apples", "pending"),  # Cyrillic a (U+0430): xn--pple-43d.com
}
NAMES = tuple(map(normalize, DOMAINS))  # as stored
HOSTILE = [
    *"\x00 \t%.-*/:@[]\\?#&=+;,_~",
    *("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\ufe0f"),
    *("\uff0e", "\u3002", "\uff61", "\u212a", "\u0130", "\u0131", "\u017f"),
    *("%2E", "%2e", "%00", ":443", ":0443", ":", ".."),
]
BLANKS = (" ", "\t", "\n", "\r", "\x0b", "\x0c", "\u00a0", "\u3000")
CONFUSABLE = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441"}
CONFUSABLE |= {"k": "\u212a", "s": "\u017f", "i": "\u0131", ".": "\uff0e"}


@dataclass(frozen=True, slots=True)
class Population:
    allowed: dict[str, str]  # hostname → app, as the database holds them


async def populate(api: Api) -> Population:
    """DOMAINS attached through the API and moved to their states; what the gate has seen."""
    tokens = {tenant: await api.tenant(tenant) for tenant in ("acme", "globex")}
    for typed, (tenant, app, status) in DOMAINS.items():
        name = (await api.attach(tokens[tenant], typed, app=app))["domain"]
        if status == "removed":
            reply = await api.call("DELETE", f"/api/v1/domains/{name}", token=tokens[tenant])
            assert reply.status == 204
        elif status != "pending":
            set_status(api.db_path, name, status)
    await gate_synced(api)
    rows = sql(api.db_path, "SELECT hostname, app, status FROM domains")
    allowed = {name: app for name, app, status in rows if status in ALLOWED_STATUSES}
    assert len(allowed) == 7 and sorted(name for name, _, _ in rows) == sorted(NAMES)
    return Population(allowed)


@pytest.fixture
async def population(api: Api) -> Population:
    return await populate(api)


def expected_ask(population: Population, values: list[str]) -> int:
    """The oracle: one `domain` whose gate key is an allowed hostname, or a denial."""
    return 200 if len(values) == 1 and gate_key(values[0]) in population.allowed else 403


def u_label(label: str) -> str:
    """The Unicode form of an A-label (by the standard Punycode codec); others as they are."""
    if not label.startswith("xn--"):
        return label
    try:
        return codecs.decode(label[4:].encode("ascii"), "punycode")
    except UnicodeError:
        return label


@st.composite
def lookalikes(draw: st.DrawFn, names: tuple[str, ...]) -> str:
    """A stored name, then up to three edits a scanner or a broken client might make."""
    name = draw(st.sampled_from(names))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(name)))
        edit = draw(st.sampled_from(("case", "insert", "confuse", "u-label", "cut", "dot", "pad")))
        if edit == "case":
            name = name[:at] + name[at:].upper()
        elif edit == "insert":
            name = name[:at] + draw(st.sampled_from(HOSTILE)) + name[at:]
        elif edit == "confuse" and at < len(name) and name[at] in CONFUSABLE:
            name = name[:at] + CONFUSABLE[name[at]] + name[at + 1 :]
        elif edit == "u-label":
            name = ".".join(map(u_label, name.split(".")))
        elif edit == "cut":
            name = name[:at] + name[at + 1 :]
        elif edit == "dot":
            name += "."
        elif edit == "pad":
            name = draw(st.sampled_from(("", *BLANKS))) + name + draw(st.sampled_from(BLANKS))
    return name


T = TypeVar("T")


def one_or_several(values: st.SearchStrategy[T]) -> st.SearchStrategy[list[T]]:
    """Mostly one value (the case that can be allowed), else none or several."""
    return st.one_of(values.map(lambda value: [value]), st.lists(values, max_size=3))


def domain_values(names: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    return one_or_several(st.one_of(lookalikes(names), st.text(max_size=20)))


def no_gate_errors(caplog: pytest.LogCaptureFixture) -> None:
    """The gate denies on an exception (fail closed); any input that gets there is a bug."""
    errors = [r for r in caplog.records if r.name.startswith("gateway")]
    assert errors == [], errors[0].getMessage()
    caplog.clear()


OTHER_PARAMS = ((), (("Domain", "shop.acme.com"),), (("name", "acme.com"),))


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(values=domain_values(NAMES), others=st.sampled_from(OTHER_PARAMS))
@example(values=["Shop.ACME.com."], others=())
@example(values=["shop.acme.com", "shop.acme.com"], others=())
@example(values=[], others=(("Domain", "shop.acme.com"),))
async def test_tls_ask_through_a_client(
    population: Population,
    internal: Client,
    caplog: pytest.LogCaptureFixture,
    values: list[str],
    others: tuple[tuple[str, str], ...],
) -> None:
    params = [("domain", value) for value in values] + list(others)
    async with internal.get("/tls-ask", params=params) as response:
        assert response.status == expected_ask(population, values), values
        assert await response.text() == ("allowed\n" if response.status == 200 else "denied\n")
    no_gate_errors(caplog)


UNRESERVED = frozenset((string.ascii_letters + string.digits + "-._~").encode())


@st.composite
def percent_encoded(draw: st.DrawFn, raw: bytes) -> bytes:
    """`raw` in a query string: each byte escaped (in either hex case) or, when that is allowed,
    as itself; a space may be a '+'."""
    out = []
    for byte in raw:
        if byte in UNRESERVED and draw(st.booleans()):
            out.append(bytes([byte]))
        elif byte == 0x20 and draw(st.booleans()):
            out.append(b"+")
        else:
            out.append(draw(st.sampled_from((b"%%%02X", b"%%%02x"))) % byte)
    return b"".join(out)


KEYS = (b"domain", b"domain", b"domain", b"domain", b"Domain", b"name", b"domain ", b"")


@st.composite
def ask_queries(draw: st.DrawFn, names: tuple[str, ...]) -> bytes:
    """A query string of zero to three parameters, mostly `domain`, with any bytes as values."""
    values = st.one_of(st.sampled_from(names), lookalikes(names), st.binary(max_size=24)).map(
        lambda value: value.encode() if isinstance(value, str) else value
    )
    pairs = draw(one_or_several(st.tuples(st.sampled_from(KEYS), values)))
    parts = []
    for key, value in pairs:
        encoded_key = draw(percent_encoded(key))
        if value or draw(st.booleans()):
            parts.append(encoded_key + b"=" + draw(percent_encoded(value)))
        else:
            parts.append(encoded_key)  # a bare key, as in "?domain"
    return b"&".join(parts)


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(query=ask_queries(NAMES) | ask_queries(("shop.acme.com", "k.acme.com")))
@example(query=b"domain=shop%2Eacme.com")
@example(query=b"domain=shop.xn--bcher-kva.de.")
@example(query=b"domain=shop%252Eacme.com")
@example(query=b"domain&domain=shop.acme.com")
@example(query=b"%64omain=SHOP.ACME.COM")
async def test_tls_ask_with_any_bytes_on_the_wire(
    population: Population, internal: Client, caplog: pytest.LogCaptureFixture, query: bytes
) -> None:
    """Sent byte for byte: no client library re-encodes the query. One URL decoding is the
    transport's; whatever it yields is then taken as the name, and only as the name."""
    pairs = urllib.parse.parse_qsl(query.decode("ascii"), keep_blank_values=True, errors="replace")
    values = [value for key, value in pairs if key == "domain"]
    assert await raw_get(internal, b"/tls-ask?" + query) == expected_ask(population, values)
    no_gate_errors(caplog)


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(junk=st.binary(max_size=40))
@example(junk=b"#x")
@example(junk=b"\x00")
@example(junk=b"\xff")
@example(junk=b"a" * 9000)
async def test_tls_ask_with_unescaped_bytes_in_the_target(
    population: Population, internal: Client, caplog: pytest.LogCaptureFixture, junk: bytes
) -> None:
    """Bytes a URL may not hold, sent raw after an allowed name: refused as a bad request or
    denied, never allowed unless the request's target (up to the first space, RFC 9112 3) read
    as a URL (up to any fragment) still names an allowed host."""
    target = b"/tls-ask?domain=shop.acme.com" + junk.replace(b"\r", b"").replace(b"\n", b"")
    status = await raw_get(internal, target)
    meant = target.split(b" ", 1)[0].decode("utf-8", "replace")
    query = urllib.parse.urlsplit(meant).query
    values = [v for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True) if k == "domain"]
    assert status in (400, 403, 414, 431) or (status == 200 == expected_ask(population, values))
    no_gate_errors(caplog)


# The forms a scanner tries for an allowed name, as the decoded value of `domain` and as the host
# Caddy forwards: only the A-label itself passes (any case, one trailing dot).
LOOKALIKE_FORMS: list[tuple[str, bool]] = [
    ("shop.xn--bcher-kva.de", True),
    ("SHOP.XN--BCHER-KVA.DE.", True),
    ("apple.com", True),
    ("Apple.COM.", True),
    ("a" * 63 + ".acme.com", True),
    ("k.acme.com", True),
    ("shop.b\u00fccher.de", False),
    ("SHOP.B\u00dcCHER.DE", False),
    ("shop.xn--bcher-kva.de..", False),
    ("shop\uff0exn--bcher-kva\uff0ede", False),
    ("shop\u3002xn--bcher-kva\u3002de", False),
    ("shop\uff61xn--bcher-kva\uff61de", False),
    *((f"app{char}le.com", False) for char in ("\u200b", "\u200c", "\u200d", "\u2060")),
    *((f"apple.com{char}", False) for char in ("\ufeff", "\u00ad", "\x00", "\ufe0f")),
    *((f"{blank}apple.com", False) for blank in BLANKS),
    *((f"apple.com{blank}", False) for blank in BLANKS),
    ("\u0430pple.com", False),  # Cyrillic a (U+0430)
    ("xn--pple-43d.com", False),  # its A-label: attached, but pending
    ("\uff41pple.com", False),  # full-width a
    ("\u212a.acme.com", False),  # KELVIN SIGN
    ("shop%2Eacme.com", False),  # an escape left after the one decoding
    ("shop%2eacme.com", False),
    ("a" * 64 + ".acme.com", False),
    *(
        (literal, False)
        for literal in (
            "127.0.0.1",
            "127.1",
            "2130706433",
            "0x7f000001",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "::1",
            "[::1]",
            "fe80::1%eth0",
            "[fe80::1%25eth0]",
        )
    ),
]


async def test_lookalikes_of_allowed_names(population: Population, internal: Client) -> None:
    wrong = []
    for form, allowed in LOOKALIKE_FORMS:
        every_byte = "".join(f"%{byte:02X}" for byte in form.encode()).encode()
        asked = await raw_get(internal, b"/tls-ask?domain=" + every_byte)
        # Blanks at the edges of a header value are HTTP's, not the name's (RFC 9110 5.5), and
        # a line break would end the header: those forms go to /tls-ask alone.
        hosts = (form, form + ":443") if form == form.strip(" \t\r\n") else ()
        routed = [
            await raw_get(internal, b"/route", b"X-Forwarded-Host: " + host.encode() + b"\r\n")
            for host in hosts
        ]
        if allowed != (asked == 200) or any(allowed != (status == 200) for status in routed):
            wrong.append((form, asked, routed))
        assert asked in (200, 403) and all(status in (200, 400, 404) for status in routed)
    assert wrong == []
    assert sum(allowed for _, allowed in LOOKALIKE_FORMS) == 6
