"""What settings.db names, as messages and logs show it."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_PASSWORD_PARAMETER = re.compile(r"((?:^|&)password=)[^&]*")


def described(target: Path | str) -> str:
    """settings.db for messages and logs: the file, or the URL without its password."""
    if not isinstance(target, str):
        return str(target)
    parts = urlsplit(target)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    query = _PASSWORD_PARAMETER.sub(r"\1***", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))
