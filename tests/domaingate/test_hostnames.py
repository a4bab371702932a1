"""Hostname rules: normalize() for typed names, parse() with reserved zones, gate_key() for SNI."""

from __future__ import annotations

import pytest

from domaingate.errors import InvalidHostname, ReservedHostname, WildcardNotSupported
from domaingate.hostnames import (
    MAX_LABELS,
    Kind,
    classify,
    gate_key,
    is_reserved,
    normalize,
    parse,
)

RESERVED = ("apps.example.net", "internal.corp")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("shop.acme.com", "shop.acme.com"),
        ("Shop.ACME.Com", "shop.acme.com"),
        ("shop.acme.com.", "shop.acme.com"),
        ("  shop.acme.com\t\n", "shop.acme.com"),
        ("SHOP.ACME.COM.", "shop.acme.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("Bücher.DE", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("XN--BCHER-KVA.de", "xn--bcher-kva.de"),
        ("shop.bücher.de.", "shop.xn--bcher-kva.de"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("例え.jp", "xn--r8jz45g.jp"),
        (
            "\uff53\uff48\uff4f\uff50\uff0e\uff41\uff43\uff4d\uff45\uff0e\uff43\uff4f\uff4d",
            "shop.acme.com",
        ),  # full-width, as a browser maps it
        ("shop\u3002acme\u3002com", "shop.acme.com"),
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2008: ß stays ß (not "fass")
        ("a-b.acme.com", "a-b.acme.com"),
        ("1shop.acme.com", "1shop.acme.com"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        ("acme.co.uk", "acme.co.uk"),
        ("x.y.z.acme.com", "x.y.z.acme.com"),
        ("123.acme.com", "123.acme.com"),
    ],
)
def test_normalize_accepts_and_canonicalises(raw: str, expected: str) -> None:
    assert normalize(raw) == expected
    assert normalize(expected) == expected  # idempotent


def test_a_name_of_253_octets_is_accepted_254_is_not() -> None:
    name = "a" * 61 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 59 + ".com"
    assert len(name) == 253
    assert normalize(name) == name
    with pytest.raises(InvalidHostname):
        normalize("a" + name)


def test_a_name_of_16_labels_is_accepted_17_is_not() -> None:
    name = "a." * 14 + "acme.com"
    assert len(name.split(".")) == MAX_LABELS == 16
    assert normalize(name) == name
    for longer in ("a." + name, "a." + name + ".", "a\u3002" + name):
        with pytest.raises(InvalidHostname) as caught:
            normalize(longer)
        assert caught.value.code == "INVALID_HOSTNAME"
        assert "17 labels" in caught.value.message and "at most 16" in caught.value.message


def test_the_longest_name_in_labels_is_refused_for_its_labels() -> None:
    """The name that cost the most lookups: 127 one-octet labels in 253 octets."""
    name = "a." * 125 + "com"
    assert len(name) == 253 and len(name.split(".")) == 126
    with pytest.raises(InvalidHostname) as caught:
        parse(name, RESERVED)
    assert "126 labels" in caught.value.message


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        ".",
        "..",
        "acme.com..",
        ".acme.com",
        "shop..acme.com",
        "localhost",
        "shop",
        "com",
        "co.uk",
        "github.io",
        "-shop.acme.com",
        "shop-.acme.com",
        "sh_op.acme.com",
        "sh op.acme.com",
        "shop.acme.com/",
        "shop.acme.com:443",
        "http://shop.acme.com",
        "user@shop.acme.com",
        "shop%2eacme.com",
        "shop.acme.com%00",
        "shop\x00.acme.com",
        "shop.acme.com\x00",
        "shop\u200b.acme.com",  # zero-width space
        "shop\u200d.acme.com",  # zero-width joiner
        "shop\ufeff.acme.com",  # zero-width no-break space
        "shop\u00ad.acme.com",  # soft hyphen
        "shop\u2028.acme.com",
        "ab--cd.acme.com",
        "xn--.acme.com",
        "xn--zz.acme.com",
        "xn--bcher-kva.xn--",
        "a" * 64 + ".com",
        "ü" * 60 + ".de",  # over 63 octets once encoded
        "a." * 127 + "com",  # 257 octets
        "1.2.3.4",
        "1.2.3.4.",
        "127.1",
        "127.0.0.1",
        "2130706433",
        "0x7f000001",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "shop.acme.123",
        "::1",
        "[::1]",
        "[2001:db8::1]",
        "2001:db8::1",
        "::ffff:1.2.3.4",
        "😀.acme.com",
        "shop!.acme.com",
    ],
)
def test_normalize_rejects(raw: str) -> None:
    with pytest.raises(InvalidHostname) as caught:
        normalize(raw)
    assert caught.value.code == "INVALID_HOSTNAME"
    assert caught.value.message


@pytest.mark.parametrize("raw", ["*.acme.com", "*", "shop.*.acme.com", "*acme.com", "a*.b.com"])
def test_wildcards(raw: str) -> None:
    with pytest.raises(WildcardNotSupported):
        normalize(raw)


@pytest.mark.parametrize(
    ("name", "kind", "registrable"),
    [
        ("acme.com", Kind.APEX, "acme.com"),
        ("shop.acme.com", Kind.SUBDOMAIN, "acme.com"),
        ("acme.co.uk", Kind.APEX, "acme.co.uk"),
        ("shop.acme.co.uk", Kind.SUBDOMAIN, "acme.co.uk"),
        ("acme.github.io", Kind.APEX, "acme.github.io"),
        ("a.b.acme.com.au", Kind.SUBDOMAIN, "acme.com.au"),
        ("xn--bcher-kva.de", Kind.APEX, "xn--bcher-kva.de"),
    ],
)
def test_classify_uses_the_public_suffix_list(name: str, kind: Kind, registrable: str) -> None:
    host = classify(name)
    assert host.name == name
    assert host.kind is kind
    assert host.registrable == registrable


@pytest.mark.parametrize("suffix", ["co.uk", "com.au", "github.io", "com"])
def test_public_suffixes_themselves_are_refused(suffix: str) -> None:
    with pytest.raises(InvalidHostname):
        normalize(suffix)
    with pytest.raises(InvalidHostname):
        parse(suffix, RESERVED)


@pytest.mark.parametrize(
    "raw",
    [
        "apps.example.net",
        "shop.apps.example.net",
        "A.B.Apps.Example.Net.",
        "internal.corp",
        "x.internal.corp",
    ],
)
def test_reserved_zones(raw: str) -> None:
    with pytest.raises(ReservedHostname):
        parse(raw, RESERVED)


def test_reserved_matches_whole_labels() -> None:
    assert not is_reserved("myapps.example.net", RESERVED)
    assert not is_reserved("example.net", RESERVED)
    assert is_reserved("apps.example.net", RESERVED)
    assert parse("myapps.example.net", RESERVED).kind is Kind.SUBDOMAIN
    assert parse("Shop.Bücher.de", RESERVED).name == "shop.xn--bcher-kva.de"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("shop.acme.com", "shop.acme.com"),
        ("SHOP.Acme.COM", "shop.acme.com"),
        ("shop.acme.com.", "shop.acme.com"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        # Taken as is: never repaired into another name, so it simply matches nothing.
        ("shop.acme.com..", "shop.acme.com."),
        (" shop.acme.com", " shop.acme.com"),
        ("shop.acme.com:443", "shop.acme.com:443"),
        ("shop%2eacme.com", "shop%2eacme.com"),
        ("", None),
        (".", None),
        # Non-ASCII is refused before lower-casing.
        ("\u212a.acme.com", None),  # KELVIN SIGN: lower() would give "k.acme.com"
        ("\u0130.acme.com", None),  # I WITH DOT ABOVE: lower() gives "i̇"
        ("shop\uff0eacme\uff0ecom", None),
        ("shop\u3002acme\u3002com", None),
        ("bücher.de", None),
        ("shop.acme.com\u00a0", None),
    ],
)
def test_gate_key_lower_cases_and_drops_one_dot_only(raw: str, key: str | None) -> None:
    assert gate_key(raw) == key


def test_gate_key_never_maps_a_non_ascii_name_onto_an_ascii_one() -> None:
    # Every code point whose lower-case form is ASCII while it is not.
    tricky = [chr(c) for c in range(0x80, 0x110000) if chr(c).lower().isascii()]
    assert "\u212a" in tricky
    for char in tricky:
        assert gate_key(f"{char}.acme.com") is None
