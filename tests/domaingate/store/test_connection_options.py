"""What every PostgreSQL connection is opened with: safe behind a pooler in transaction mode,
and named by its role unless the operator's URL names it."""

from __future__ import annotations

from domaingate.store.postgres.database import connection_options


def test_a_connection_prepares_nothing_and_is_named_by_its_role() -> None:
    options = connection_options("postgresql://u@db.internal/dg", "feed")
    assert options["prepare_threshold"] is None and options["autocommit"] is True
    assert options["application_name"] == "domaingate-feed"


def test_an_application_name_in_the_url_is_the_operators_to_keep() -> None:
    for url in (
        "postgresql://u@db.internal/dg?application_name=edge-a",
        "host=db.internal dbname=dg application_name=edge-a",
    ):
        assert "application_name" not in connection_options(url, "gateway")
