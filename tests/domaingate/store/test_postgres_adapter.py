"""The PostgreSQL adapter's translation of the store's SQL, its rows, and URLs in messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from domaingate.settings_values import parse_db
from domaingate.store.postgres.adapter import _row_class, translate
from domaingate.targets import described


def test_placeholders_become_psycopgs_and_a_percent_is_doubled() -> None:
    assert translate("SELECT * FROM domains WHERE id = ? AND app LIKE 'a%'") == (
        "SELECT * FROM domains WHERE id = %s AND app LIKE 'a%'",
        False,
    )
    assert translate("SELECT ? % 2")[0] == "SELECT %s %% 2"


def test_a_question_mark_inside_quotes_is_left_alone() -> None:
    assert translate("SELECT '?', \"a?\" FROM t WHERE x = ?")[0] == (
        "SELECT '?', \"a?\" FROM t WHERE x = %s"
    )


@pytest.mark.parametrize(
    ("sql", "returns_id"),
    [
        ("INSERT INTO tenants (name) VALUES (?)", True),
        ("INSERT INTO domains (hostname) VALUES (?)", True),
        ("INSERT INTO domain_events (event_id) VALUES (?)", False),
        ("INSERT INTO leases (name) VALUES (?) ON CONFLICT (name) DO NOTHING", False),
        ("UPDATE domains SET app = ?", False),
    ],
)
def test_an_insert_with_a_row_id_returns_it(sql: str, returns_id: bool) -> None:
    text, flag = translate(sql)
    assert flag is returns_id
    assert text.endswith(" RETURNING id") is returns_id


def test_rows_answer_by_position_and_by_name() -> None:
    row: Any = _row_class(("id", "status"))((7, "active"))
    assert (row[0], row[1], row["id"], row["status"]) == (7, "active", 7, "active")
    assert list(row) == [7, "active"]
    assert row.keys() == ["id", "status"]
    with pytest.raises(KeyError):
        row["missing"]


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        (Path("/var/lib/domaingate.db"), "/var/lib/domaingate.db"),
        ("postgresql://dg@db:5432/dg", "postgresql://dg@db:5432/dg"),
        ("postgresql://dg:s3cret@db:5432/dg", "postgresql://dg:***@db:5432/dg"),
        (
            "postgres://db/dg?sslmode=require&password=s3cret",
            "postgres://db/dg?sslmode=require&password=***",
        ),
    ],
)
def test_a_password_never_reaches_a_message(target: Path | str, shown: str) -> None:
    assert described(parse_db(target)) == shown
    assert repr(parse_db(target)).count("s3cret") == 0
