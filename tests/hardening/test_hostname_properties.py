"""Properties of the names the hostname rules accept: `normalize()` for typed names (one
canonical A-label form; nothing dropped, nothing turned into a look-alike) and `gate_key()` for
names as Caddy sends them. Hypothesis draws the names; the examples the spec names are spelled
out beside them. The strategies here also serve test_hostname_rejections.py."""

from __future__ import annotations

import codecs
import string
import sys
import unicodedata

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domaingate.errors import InvalidHostname, WildcardNotSupported
from domaingate.hostnames import MAX_LABELS, gate_key, normalize
from domaingate.settings import load_settings

FAST = settings(max_examples=150, deadline=None, database=None)
# The platform zone and one more reserved suffix, read the way the daemons read them.
RESERVED = load_settings(
    env={"DOMAINGATE_PLATFORM_ZONE": "Apps.Example.NET.", "DOMAINGATE_RESERVED": "corp.example"}
).reserved_zones
# Registrable domains no generated prefix can turn into a public suffix.
REGISTRABLE = ("acme.com", "acme.co.uk", "xn--bcher-kva.de", "example.org")
# The label separators UTS 46 maps to "." (ideographic, full-width, half-width ideographic).
FULL_STOPS = ("\u3002", "\uff0e", "\uff61")
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\x00")
LOOKALIKES = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441"}
UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ldh_label(max_size: int = 63) -> st.SearchStrategy[str]:
    """A valid LDH label: letters, digits, inner hyphens, never '--' in positions 3 and 4."""
    inner = st.text(string.ascii_lowercase + string.digits + "-", max_size=max_size - 2)
    return st.builds(
        lambda first, middle, last: (first + middle + last)[:max_size],
        st.sampled_from(string.ascii_lowercase + string.digits),
        inner,
        st.text(string.ascii_lowercase + string.digits, max_size=1),
    ).filter(lambda label: not label.endswith("-") and label[2:4] != "--")


@st.composite
def valid_names(draw: st.DrawFn) -> str:
    """A name normalize() accepts as it stands: up to three labels in front of a registrable."""
    labels = draw(st.lists(ldh_label(20), max_size=3))
    return ".".join([*labels, draw(st.sampled_from(REGISTRABLE))])


@st.composite
def spellings(draw: st.DrawFn, name: str) -> str:
    """`name` as a person may type it: any ASCII case, one trailing dot, blanks around it."""
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    typed = "".join(c.translate(UPPER) if up else c for c, up in zip(name, flips, strict=True))
    dot = draw(st.sampled_from(("", ".", *FULL_STOPS)))
    blank = draw(st.sampled_from(("", " ", "\t", "\n ")))
    return blank + typed + dot + blank


def rejected(raw: str, error: type[InvalidHostname | WildcardNotSupported]) -> None:
    with pytest.raises(error) as caught:
        normalize(raw)
    assert caught.value.code == error.code
    assert caught.value.message


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(st.data(), valid_names())
def test_case_trailing_dot_and_blanks_change_nothing(data: st.DataObject, name: str) -> None:
    assert normalize(name) == name
    assert normalize(data.draw(spellings(name))) == name


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(st.one_of(st.text(max_size=30), valid_names().map(str.upper)))
@example("Shop.Bücher.DE.")
@example("\uff33\uff28\uff2f\uff30\uff0eacme\u3002com")
def test_normalising_is_idempotent_and_yields_an_a_label_name(raw: str) -> None:
    try:
        name = normalize(raw)
    except (InvalidHostname, WildcardNotSupported):
        return
    assert normalize(name) == name
    assert name.isascii() and name == name.translate(LOWER)
    labels = name.split(".")
    assert 2 <= len(labels) <= MAX_LABELS and len(name) <= 253
    assert all(0 < len(label) <= 63 for label in labels)
    assert set(name) <= set(string.ascii_lowercase + string.digits + "-.")
    assert gate_key(name) == name  # what the API stores is what the gate will match


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(st.lists(st.integers(1, 70), min_size=1, max_size=6), st.booleans())
@example([63, 63, 63, 57], True)  # 253 octets: the longest name, with or without its dot
@example([63, 63, 63, 58], False)  # 254 octets
@example([64], False)
def test_length_limits(lengths: list[int], dot: bool) -> None:
    name = ".".join("a" * n for n in lengths) + ".com"
    if all(n <= 63 for n in lengths) and len(name) <= 253:
        assert normalize(name + "." * dot) == name
    else:
        rejected(name + "." * dot, InvalidHostname)


@FAST
@given(st.lists(ldh_label(8), min_size=1, max_size=40), st.sampled_from(REGISTRABLE), st.data())
@example(["a"] * 14, "acme.com", None)  # 16 labels: the most a name may have
@example(["a"] * 13, "acme.co.uk", None)  # 16 labels under a two-label suffix
@example(["a"] * 15, "acme.com", None)  # 17
def test_label_count_limit(labels: list[str], registrable: str, data: st.DataObject | None) -> None:
    """At most 16 labels, however the name is spelled; each one more costs a CAA lookup at
    every resolver."""
    name = ".".join([*labels, registrable])
    typed = data.draw(spellings(name)) if data is not None else name
    if len(name.split(".")) <= MAX_LABELS:
        assert normalize(typed) == name
    else:
        rejected(typed, InvalidHostname)


UNICODE_LETTERS = "äöüßçéñøåłžاБвгдежзийклмнпртуфхцчшщыэюяαβγδεζηθλμξπστφχψω例え日本語中文한국어"


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(st.text(UNICODE_LETTERS, min_size=1, max_size=10), st.sampled_from(REGISTRABLE))
@example("bücher", "acme.com")
@example("παράδειγμα", "acme.com")
def test_u_label_and_a_label_are_one_name(label: str, registrable: str) -> None:
    try:
        name = normalize(f"{label}.{registrable}")
    except InvalidHostname:
        return  # a mix of scripts IDNA 2008 refuses (bidi and context rules)
    first = name.split(".")[0]
    assert first.startswith("xn--")
    # Decoded with the standard Punycode codec, not with the library under test.
    u_label = codecs.decode(first[4:].encode("ascii"), "punycode")
    assert u_label == unicodedata.normalize("NFC", label.lower())
    for spelling in (
        f"{u_label}.{registrable}",
        f"{u_label}\u3002{registrable}.",
        name.upper(),
        f"{first.upper()}.{registrable}.",
    ):
        assert normalize(spelling) == name, spelling


# About 100k ideographs and syllables: no decomposition, no case, nothing UTS 46 maps. Hypothesis
# samples them, with the unassigned and private-use code points; the sweep takes all the rest.
SAMPLED_NAMES = ("CJK UNIFIED IDEOGRAPH-", "HANGUL SYLLABLE ", "TANGUT IDEOGRAPH-")
SAMPLED = st.one_of(
    st.characters(categories=("Cn", "Co")),
    st.integers(0x4E00, 0x9FFF).map(chr),
    st.integers(0x20000, 0x2A6DF).map(chr),
    st.integers(0xAC00, 0xD7A3).map(chr),
    st.integers(0x17000, 0x187F7).map(chr),
)


def vanished_or_lookalike(char: str) -> str | None:
    """What is wrong with `char` inside a label, if anything. Right is: refused, or a distinct
    xn-- name, or the ASCII it is a compatibility form of (full-width and mathematical letters,
    as a browser maps them). Wrong is dropped (an invisible character would let two different
    inputs claim one name) or turned into a look-alike from another script."""
    try:
        name = normalize(f"x{char}y.acme.com")
    except (InvalidHostname, WildcardNotSupported):
        return None
    if any(label.startswith("xn--") for label in name.split(".")):
        return None
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", char).casefold())
    expected = "." if char in FULL_STOPS else folded
    if expected and expected.isascii() and name == f"x{expected}y.acme.com":
        return None
    return f"U+{ord(char):04X} {unicodedata.name(char, '?')} gave {name}"


def test_no_character_vanishes_or_turns_into_a_lookalike() -> None:
    wrong = []
    for point in range(0x80, sys.maxunicode + 1):
        char = chr(point)
        if unicodedata.category(char) in ("Cs", "Cn", "Co"):
            continue  # surrogates never arrive in UTF-8 text; the others are sampled
        if unicodedata.name(char, "").startswith(SAMPLED_NAMES):
            continue
        problem = vanished_or_lookalike(char)
        if problem is not None:
            wrong.append(problem)
    assert wrong == []


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(SAMPLED)
def test_no_ideograph_or_unassigned_character_vanishes(char: str) -> None:
    assert vanished_or_lookalike(char) is None


@pytest.mark.parametrize("char", (*INVISIBLE, "\u034f", "\ufe0f", "\u3164", "\U000e0100"))
def test_invisible_characters_are_refused_wherever_they_stand(char: str) -> None:
    for at in range(len("shop.acme.com") + 1):
        rejected("shop.acme.com"[:at] + char + "shop.acme.com"[at:], InvalidHostname)


def test_full_width_dots_are_dots_and_lookalikes_are_other_names() -> None:
    for stop in FULL_STOPS:
        assert normalize(f"shop{stop}acme{stop}com{stop}") == "shop.acme.com"
    assert normalize("\u0430pple.com") == "xn--pple-43d.com"
    for ascii_char, cyrillic in LOOKALIKES.items():
        name = normalize("shop.acme.com".replace(ascii_char, cyrillic, 1))
        assert name != "shop.acme.com" and "xn--" in name, ascii_char


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(st.text(max_size=20))
@example("\u212a.acme.com")
@example("SHOP.acme.com..")
@example("shop.b\u00fccher.de")
def test_gate_key_is_the_name_as_caddy_sends_it(raw: str) -> None:
    """Lower-cased ASCII with one trailing dot dropped, or nothing: never repaired."""
    key = gate_key(raw)
    if not raw.isascii() or raw in ("", "."):
        assert key is None
        return
    assert key == raw.translate(LOWER).removesuffix(".")


@pytest.mark.slow  # hypothesis: many examples
@FAST
@given(ldh_label(20), st.sampled_from(REGISTRABLE))
def test_only_the_a_label_reaches_the_gate(label: str, registrable: str) -> None:
    """The API maps U-labels and full-width dots; the gate takes none of that."""
    typed = f"{label}\u3002b\u00fccher.{registrable}"
    name = normalize(typed)
    assert gate_key(name) == name == gate_key(name.upper() + ".")
    assert gate_key(typed) is None
