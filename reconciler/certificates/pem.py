"""The first PEM certificate block of a file, found in time linear in the file's size.

A certificate file comes from Caddy's storage, which others may be able to write, and the scan
parses it while holding the GIL, so its cost must not depend on how the file is shaped. The block
is the first `-----BEGIN CERTIFICATE-----` line (LF or CRLF) up to the first `-----END
CERTIFICATE-----` marker at the start of a later line, with at least one octet between them.
A regex that says so in one pattern (a lazy `.+?` over the body) tries every BEGIN line against
the rest of the file: a file of BEGIN lines without an END costs time quadratic in its size.
Here each marker is looked for once, by a forward search.

No later BEGIN line can give a block when the first one has no END after it (its END would come
after the first one too), so nothing past the first BEGIN line is ever searched twice.
"""

from __future__ import annotations

import re

BEGIN = b"-----BEGIN CERTIFICATE-----"
# The BEGIN marker and its line end: a constant-length match after a literal prefix, so the
# search is linear.
_BEGIN_LINE = re.compile(re.escape(BEGIN) + rb"\r?\n")
# An END marker at the start of a line; a CR before the LF belongs to the line before.
_END_MARKER = b"\n-----END CERTIFICATE-----"


def first_certificate(data: bytes) -> bytes | None:
    """The first certificate block of `data`, from its BEGIN to the end of its END marker, or
    None when `data` holds none (no BEGIN line, or none with an END after it)."""
    begin = _BEGIN_LINE.search(data)
    if begin is None:
        return None
    # At least one octet of body: an END right after the BEGIN line does not close it.
    end = data.find(_END_MARKER, begin.end() + 1)
    if end < 0:
        return None
    return data[begin.start() : end + len(_END_MARKER)]
