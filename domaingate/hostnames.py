"""Hostname rules: normalisation, rejection, apex detection and the gate's strict lookup key.

Two entry points with deliberately different tolerance:

- `normalize()` is for names a person typed (API, CLI). It maps them the way a browser would
  (UTS 46: case folding, full-width dots, U-labels to A-labels) and then rejects everything that
  cannot be a tenant's hostname.
- `gate_key()` is for names Caddy sends during a handshake. Caddy already sends the SNI lower-cased
  in A-label form, so anything else is hostile or broken and must never be "repaired" into a name
  that happens to be allowed.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import idna
from publicsuffixlist import PublicSuffixList

from domaingate.errors import InvalidHostname, ReservedHostname, WildcardNotSupported

MAX_NAME_OCTETS = 253
MAX_LABEL_OCTETS = 63
# DNS allows up to 127 labels in 253 octets, but every label costs a CAA lookup at every resolver
# (RFC 8659 climbs to the top) and no tenant's real hostname comes near 16.
MAX_LABELS = 16

# Invisible or control characters: UTS 46 would silently drop some of them (soft hyphen, zero-width
# joiners), which would let two different-looking inputs claim one name. Refuse them outright.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"})
# One DNS label of letters, digits and inner hyphens (A-labels for IDN): the one spelling of the
# rule, which settings (zones), the API (app names) and its OpenAPI document also use.
LDH_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_LDH_LABEL = re.compile(LDH_LABEL)
# A label of a name that is no hostname a tenant attaches: underscores allowed, as in record
# names (`_domaingate`) and internal service hosts. Settings (the TXT prefix) and app upstreams
# use it.
NAME_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
# A final label that is a number makes the whole name an IPv4 literal to URL parsers (WHATWG):
# 127.1, 0x7f.1, 2130706433. No top-level domain looks like that.
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")


class Kind(enum.StrEnum):
    SUBDOMAIN = "subdomain"
    APEX = "apex"


@dataclass(frozen=True, slots=True, kw_only=True)
class Hostname:
    """A normalised hostname and where it sits in the DNS tree."""

    name: str
    kind: Kind
    registrable: str

    def __post_init__(self) -> None:
        if not self.name.endswith(self.registrable):
            raise ValueError(f"{self.registrable!r} is not a suffix of {self.name!r}")


@functools.cache
def _psl() -> PublicSuffixList:
    # Loading the list parses ~10k rules; do it once per process.
    return PublicSuffixList()


def normalize(raw: str) -> str:
    """The canonical A-label form of `raw`; raises InvalidHostname or WildcardNotSupported.

    Does not apply the reserved-zone rule; see `parse()`.
    """
    name = raw.strip()
    if not name:
        raise InvalidHostname(raw, "the hostname is empty")
    for char in name:
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES or _vanishes(char):
            raise InvalidHostname(raw, f"it contains the invisible character U+{ord(char):04X}")
    # NFKC: the full-width and small asterisks, which UTS 46 maps to "*", spell a wildcard too.
    if "*" in unicodedata.normalize("NFKC", name):
        raise WildcardNotSupported(raw)
    if name.startswith("[") or _is_ip_literal(name.rstrip(".")):
        raise InvalidHostname(raw, "IP addresses cannot be attached; use a hostname")
    if "%" in name or "/" in name or ":" in name or "@" in name:
        raise InvalidHostname(raw, "a hostname has no ports, paths, escapes or credentials")
    if name.isascii():
        name = name.lower()
    else:
        try:
            name = idna.uts46_remap(name, std3_rules=True, transitional=False)
        except idna.IDNAError as exc:
            raise InvalidHostname(raw, f"it is not a valid internationalised name ({exc})") from exc
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    if len(labels) > MAX_LABELS:
        # Before the labels are encoded one by one: the count alone decides.
        raise InvalidHostname(
            raw, f"it has {len(labels)} labels; a hostname may have at most {MAX_LABELS}"
        )
    encoded = [_label_to_ascii(raw, label) for label in labels]
    name = ".".join(encoded)
    if len(name) > MAX_NAME_OCTETS:
        raise InvalidHostname(raw, f"it is longer than {MAX_NAME_OCTETS} octets")
    if len(encoded) < 2:
        raise InvalidHostname(raw, "single-label names cannot get a public certificate")
    if _NUMERIC_LABEL.fullmatch(encoded[-1]) or _is_ip_literal(name):
        raise InvalidHostname(raw, "IP addresses cannot be attached; use a hostname")
    if _psl().is_public(name):
        raise InvalidHostname(raw, f"{name} is a public suffix, not a domain someone can own")
    return name


def _vanishes(char: str) -> bool:
    # UTS 46 also maps characters outside those categories to nothing (variation selectors, the
    # combining grapheme joiner, Hangul fillers): "shop\ufe0f.acme.com" would silently become
    # "shop.acme.com". Refused for the same reason as the invisible categories.
    if char.isascii():
        return False
    try:
        return idna.uts46_remap(char, std3_rules=True, transitional=False) == ""
    except idna.IDNAError:
        return False  # disallowed: refused with its own reason further on


def _label_to_ascii(raw: str, label: str) -> str:
    if not label:
        raise InvalidHostname(raw, "it has an empty label (two dots in a row, or a leading dot)")
    if label.isascii():
        if len(label) > MAX_LABEL_OCTETS:
            raise InvalidHostname(raw, f"the label {label[:20]}… is longer than 63 octets")
        if not _LDH_LABEL.fullmatch(label):
            raise InvalidHostname(
                raw,
                f"the label {label!r} may hold only letters, digits and inner hyphens",
            )
        if label[2:4] == "--" and not label.startswith("xn--"):
            raise InvalidHostname(raw, f"the label {label!r} has '--' in positions 3 and 4")
        if label.startswith("xn--"):
            # An A-label must decode to a valid U-label that encodes back to itself.
            try:
                if idna.alabel(idna.ulabel(label)).decode("ascii") != label:
                    raise idna.IDNAError("not in canonical form")
            except (idna.IDNAError, UnicodeError) as exc:
                raise InvalidHostname(raw, f"the label {label!r} is not a valid A-label") from exc
        return label
    try:
        encoded = idna.alabel(label).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidHostname(
            raw, f"the label {label!r} is not allowed in a hostname ({exc})"
        ) from exc
    if len(encoded) > MAX_LABEL_OCTETS:
        raise InvalidHostname(raw, f"the label {label!r} is longer than 63 octets once encoded")
    return encoded


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def classify(name: str) -> Hostname:
    """Split a normalised name into kind and registrable domain (Public Suffix List)."""
    registrable = _psl().privatesuffix(name)
    if registrable is None:
        raise InvalidHostname(name, f"{name} is a public suffix, not a domain someone can own")
    kind = Kind.APEX if registrable == name else Kind.SUBDOMAIN
    return Hostname(name=name, kind=kind, registrable=registrable)


def is_reserved(name: str, suffixes: Iterable[str]) -> bool:
    """`name` is one of `suffixes` or under one: the platform zone and RESERVED, which no tenant
    may attach and whose certificates clean-up never deletes (they are the operator's)."""
    return any(name == zone or name.endswith("." + zone) for zone in suffixes)


def parse(raw: str, reserved: Iterable[str]) -> Hostname:
    """Normalise, reject reserved zones and classify: what the API does with a typed name."""
    name = normalize(raw)
    if is_reserved(name, reserved):
        raise ReservedHostname(name)
    return classify(name)


def gate_key(raw: str) -> str | None:
    """The gate's lookup key: lower-cased, one trailing dot dropped, nothing more.

    Non-ASCII is refused before lower-casing, because `str.lower()` maps some non-ASCII
    characters (KELVIN SIGN, for one) onto ASCII letters.
    """
    if not raw.isascii():
        return None
    name = raw.lower()
    if name.endswith("."):
        name = name[:-1]
    return name or None
