"""What reaches an operator's terminal: text from tenants and DNS with its control characters shown
as escapes.

A tenant controls the records of its own zone, so a DNS answer quoted in a finding (a CAA value,
say) may carry terminal control sequences: an OSC that retitles the window, a CSI that clears the
screen or moves the cursor, a newline that forges a line of output. Every line the command line
prints, and every log line of the daemons, goes through `printable`, which shows C0 controls
(newline and tab among them), DEL, C1 controls, the bidirectional embedding, override, isolate and
mark characters, and the line and paragraph separators as Python-style escapes (`\\x1b`, `\\n`,
`\\u202e`). Backslashes are left as they are, so ordinary text and JSON print unchanged.
"""

from __future__ import annotations

import sys
from typing import TextIO

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_BIDI = (
    "\u061c"  # Arabic letter mark
    "\u200e\u200f"  # left-to-right and right-to-left marks
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings, pop, overrides
    "\u2066\u2067\u2068\u2069"  # isolates
)
_SEPARATORS = "\u2028\u2029"  # some terminals break the line at them


def _escape(char: str) -> str:
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


_UNSAFE = [chr(code) for code in (*range(0x20), *range(0x7F, 0xA0))] + list(_BIDI + _SEPARATORS)
_TABLE = str.maketrans({char: _escape(char) for char in _UNSAFE})


def printable(text: str) -> str:
    """`text` with every character that could steer a terminal shown as its escape."""
    return text.translate(_TABLE)


def say(*fields: object, sep: str = " ", file: TextIO | None = None) -> None:
    """Print `fields` as one line, each made printable; only `sep` and the line's end are the
    caller's own (a tab between the columns of a list). On stdout unless `file` is given."""
    print(sep.join(printable(str(field)) for field in fields), file=file or sys.stdout)
