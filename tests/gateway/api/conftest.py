"""The API tests run on both backends: SQLite on tmp_path, and a fresh PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import both_backends


@pytest.fixture(params=["sqlite", "postgresql"])
def db_target(request: pytest.FixtureRequest, db_path: Path) -> Path | str:
    return both_backends(request, db_path)
