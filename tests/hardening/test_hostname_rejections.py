"""Every rejection the spec lists, for names Hypothesis builds around valid ones: each refused
with its own error class and code (INVALID_HOSTNAME, WILDCARD_NOT_SUPPORTED, RESERVED_HOSTNAME)."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from domaingate.errors import InvalidHostname, ReservedHostname, WildcardNotSupported
from domaingate.hostnames import normalize, parse
from tests.hardening.test_hostname_properties import (
    FAST,
    RESERVED,
    ldh_label,
    rejected,
    spellings,
    valid_names,
)

SPEC_REJECTIONS: list[tuple[str, type[InvalidHostname | WildcardNotSupported]]] = [
    ("", InvalidHostname),
    (" \t", InvalidHostname),
    (".", InvalidHostname),
    ("a." * 125 + "acme.com", InvalidHostname),  # 258 octets
    ("a." * 15 + "acme.com", InvalidHostname),  # 17 labels
    ("a." * 124 + "com", InvalidHostname),  # 125 labels in 251 octets
    ("a" * 64 + ".acme.com", InvalidHostname),
    ("sh_op.acme.com", InvalidHostname),
    ("shop acme.com", InvalidHostname),
    ("-shop.acme.com", InvalidHostname),
    ("shop-.acme.com", InvalidHostname),
    ("192.0.2.1", InvalidHostname),
    ("[2001:db8::1]", InvalidHostname),
    ("localhost", InvalidHostname),
    ("*.acme.com", WildcardNotSupported),
    ("co.uk", InvalidHostname),
]


@pytest.mark.parametrize(("raw", "error"), SPEC_REJECTIONS)
def test_each_rejection_the_spec_lists(
    raw: str, error: type[InvalidHostname | WildcardNotSupported]
) -> None:
    rejected(raw, error)
    with pytest.raises(error):
        parse(raw, RESERVED)


@pytest.mark.parametrize("raw", ["apps.example.net", "shop.apps.example.net", "x.corp.example"])
def test_the_platform_zone_and_reserved_suffixes(raw: str) -> None:
    assert normalize(raw) == raw  # a valid name: only parse() applies the zones
    with pytest.raises(ReservedHostname) as caught:
        parse(raw, RESERVED)
    assert caught.value.code == "RESERVED_HOSTNAME"


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(valid_names(), st.data())
def test_a_percent_escape_is_never_decoded(name: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(name)))
    escape = data.draw(st.sampled_from(("%2E", "%2e", "%00", "%41", "%25", "%")))
    rejected(name[:at] + escape + name[at:], InvalidHostname)


BAD_ASCII = sorted(set(map(chr, range(128))) - set(string.ascii_letters + string.digits + "-."))


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(valid_names(), st.sampled_from(BAD_ASCII), st.data())
def test_a_bad_character_inside_a_name_is_refused(
    name: str, char: str, data: st.DataObject
) -> None:
    at = data.draw(st.integers(1, len(name) - 1))  # inside: blanks at the ends are trimmed
    error = WildcardNotSupported if char == "*" else InvalidHostname
    rejected(name[:at] + char + name[at:], error)


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(ldh_label(), st.sampled_from(("", ".")))
def test_single_labels_are_refused(label: str, dot: str) -> None:
    rejected(label + dot, InvalidHostname)


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(valid_names(), st.data())
def test_empty_labels_and_edge_hyphens_are_refused(name: str, data: st.DataObject) -> None:
    labels = name.split(".")
    # Not the last label: an empty one there is the trailing dot, which is fine.
    at = data.draw(st.integers(0, len(labels) - 2))
    for broken in ("", "-" + labels[at], labels[at] + "-", labels[at][:2] + "--" + labels[at][2:]):
        if broken.startswith("xn--"):
            continue
        rejected(".".join([*labels[:at], broken, *labels[at + 1 :]]), InvalidHostname)


@st.composite
def ipv4_literals(draw: st.DrawFn) -> str:
    """An IPv4 address as URL parsers read it: 1 to 4 parts, each decimal, octal or hex."""
    value = draw(st.integers(0, 2**32 - 1))
    widths = draw(st.sampled_from(((1, 1, 1, 1), (1, 1, 2), (1, 3), (4,))))
    parts, shift = [], 32
    for width in widths:
        shift -= 8 * width
        part = (value >> shift) & ((1 << (8 * width)) - 1)
        style = draw(st.sampled_from(("{:d}", "0{:o}", "0x{:x}", "0X{:X}", "{:03d}")))
        parts.append(style.format(part))
    literal = ".".join(parts) + draw(st.sampled_from(("", ".")))
    if draw(st.booleans()):  # as typed on a full-width keyboard
        literal = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in literal)
    return literal


@st.composite
def ipv6_literals(draw: st.DrawFn) -> str:
    address = draw(st.ip_addresses(v=6))
    text = draw(st.sampled_from((str(address), address.exploded, str(address).upper())))
    zone = draw(st.sampled_from(("", "%eth0", "%25lo")))
    return draw(st.sampled_from((text + zone, f"[{text}{zone}]", f"[{text}]:443")))


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(st.one_of(ipv4_literals(), ipv6_literals()))
@example("127.0.0.1")
@example("127.1")
@example("2130706433")
@example("0x7f000001")
@example("0x7f.0.0.1")
@example("0177.0.0.1")
@example("::1")
@example("[::1]")
@example("fe80::1%eth0")
@example("[fe80::1%25eth0]")
@example("::ffff:127.0.0.1")
def test_ip_literals_in_every_notation_are_refused(literal: str) -> None:
    rejected(literal, InvalidHostname)


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(valid_names(), st.data())
def test_a_wildcard_anywhere_is_its_own_error(name: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(name)))
    # Also as typed on a full-width keyboard: UTS 46 maps these asterisks to "*".
    star = data.draw(st.sampled_from(("*", "\uff0a", "\ufe61")))
    rejected(name[:at] + star + name[at:], WildcardNotSupported)


@pytest.mark.parametrize(
    ("suffix", "owned"),
    [
        ("com", "acme.com"),
        ("CO.UK.", "acme.co.uk"),
        ("github.io", "acme.github.io"),
        ("com.au", "acme.com.au"),
        ("xn--p1ai", "acme.xn--p1ai"),
        ("\u0440\u0444", "acme.xn--p1ai"),
        ("anything.ck", "acme.anything.ck"),  # under the wildcard rule *.ck
    ],
)
def test_public_suffixes_are_refused_and_names_below_them_are_not(suffix: str, owned: str) -> None:
    rejected(suffix, InvalidHostname)
    assert normalize(f"acme.{suffix}") == owned


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(st.lists(ldh_label(20), max_size=3), st.sampled_from(RESERVED), st.data())
def test_reserved_zones_and_everything_below_them(
    labels: list[str], zone: str, data: st.DataObject
) -> None:
    name = ".".join([*labels, zone])
    with pytest.raises(ReservedHostname) as caught:
        parse(data.draw(spellings(name)), RESERVED)
    assert caught.value.code == "RESERVED_HOSTNAME"
    # Only whole labels: a name that merely ends with the zone's text is the tenant's.
    mine = ".".join([*labels, f"my{zone}"])
    assert parse(mine, RESERVED).name == mine
