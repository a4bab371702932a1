"""What may reach an operator's terminal: `printable`, `say`, and the daemons' log lines."""

from __future__ import annotations

import io
import logging
import unicodedata

import pytest

from domaingate.logs import OneLineFormatter
from domaingate.terminal import printable, say

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_c0_del_and_c1_controls_are_escaped() -> None:
    assert printable("\x1b]0;owned\x07\x1b[2J") == r"\x1b]0;owned\x07\x1b[2J"
    assert printable("a\tb\nc\rd\x00e\x7ff\x9bg\x85") == r"a\tb\nc\rd\x00e\x7ff\x9bg\x85"
    for code in (*range(0x20), *range(0x7F, 0xA0)):
        shown = printable(chr(code))
        assert shown.startswith("\\") and shown.isascii() and shown.isprintable(), code


def test_bidi_controls_and_line_separators_are_escaped() -> None:
    assert printable("abc\u202etxt.exe") == r"abc\u202etxt.exe"
    for char in BIDI + "\u2028\u2029":
        assert printable(char) == f"\\u{ord(char):04x}"


@pytest.mark.parametrize(
    "text",
    [
        "shop.acme.test is a CNAME to web.apps.test.",
        'The CAA record x. CAA 0 issue "letsencrypt.org; accounturi=…"',
        r'{"txt": "a\\b \u001b"}',  # backslashes stay: JSON prints as it was
        "bücher.example, 例え.テスト, emoji 👩‍💻",  # printable text, a joiner in the emoji too
        "",
    ],
)
def test_ordinary_text_is_unchanged(text: str) -> None:
    assert printable(text) == text


def test_nothing_a_terminal_acts_on_survives() -> None:
    every = "".join(chr(code) for code in range(0x3000))
    left = {c for c in printable(every) if unicodedata.category(c) == "Cc" or c in BIDI}
    assert left == set()


def test_say_escapes_each_field_and_keeps_the_separator() -> None:
    out = io.StringIO()
    say("evil\tname", "app\x1b[2J", 3, sep="\t", file=out)
    say("one line\nforged", file=out)
    assert out.getvalue() == "evil\\tname\tapp\\x1b[2J\t3\none line\\nforged\n"


def test_say_prints_on_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    say("a", "b\x07")
    assert capsys.readouterr().out == "a b\\x07\n"


def test_a_log_line_quoting_dns_is_escaped_and_stays_one_line() -> None:
    record = logging.LogRecord(
        "reconciler", logging.WARNING, __file__, 1, "e.g. %s: %s", ("x.test", "\x1b[2J\nE"), None
    )
    line = OneLineFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert line == r"WARNING reconciler: e.g. x.test: \x1b[2J | E"
