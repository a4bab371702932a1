"""The schema's migrations as shipped: the files of the `domaingate.sql` package, one folder a
dialect. Both backends apply them in order, each recording the version its own way."""

from __future__ import annotations

import importlib.resources
import re
from typing import Literal

from domaingate.store.errors import MigrationError

Dialect = Literal["sqlite", "postgresql"]

_MIGRATION_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")


def migrations(dialect: Dialect = "sqlite") -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration of `dialect`, in order: SQLite's are the
    files of the `sql` package, PostgreSQL's those of its `postgresql` folder."""
    found = []
    folder = importlib.resources.files("domaingate.sql")
    if dialect != "sqlite":
        folder = folder / dialect
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _, _ in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migrations must be numbered 001, 002, … without gaps: {versions}")
    return found
