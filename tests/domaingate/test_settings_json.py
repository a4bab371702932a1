"""Settings as JSON: what one process loaded is what the process it starts rebuilds, every
value of its own type."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import pytest

from domaingate.settings import Settings, load_settings
from domaingate.settings_json import settings_from_json, settings_to_json
from domaingate.settings_values import parse_db
from domaingate.targets import PostgresServer
from tests.domaingate.test_settings import KEYS


def every_key_set() -> Settings:
    """Settings with every key given, none at its default."""
    env = {f"DOMAINGATE_{key}": env for key, (env, _, _) in KEYS.items()}
    # DB_READ is a standby of a PostgreSQL DB.
    env["DOMAINGATE_DB"] = "postgresql://dg:s3cret@db.internal:5432/dg"
    settings = load_settings(env=env)
    left = [f.name for f in fields(Settings) if getattr(settings, f.name) == f.default]
    assert not left, f"give these keys a value other than their default in KEYS: {left}"
    return settings


@pytest.mark.parametrize(
    "db", [Path("/srv/dg/domaingate.db"), "postgresql://dg:s3cret@db.internal:5432/dg"]
)
def test_settings_come_back_the_same(db: Path | str) -> None:
    target = parse_db(db)
    # A SQLite DB has no standby.
    full = every_key_set()
    read = full.db_read if isinstance(target, PostgresServer) else None
    settings = replace(full, db=target, db_read=read)
    again = settings_from_json(settings_to_json(settings))
    assert again == settings
    for field in fields(Settings):
        assert type(getattr(again, field.name)) is type(getattr(settings, field.name)), field.name


def test_unset_optional_settings_come_back_unset() -> None:
    settings = load_settings(env={})
    assert settings.expiring_days is None and settings.admin_token is None
    assert settings_from_json(settings_to_json(settings)) == settings


def test_a_value_without_a_json_form_is_refused() -> None:
    settings = replace(load_settings(env={}), reserved=({"not": "a zone"},))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no JSON form for a setting of type dict"):
        settings_to_json(settings)


def test_the_rebuilt_settings_are_checked_as_loaded_ones() -> None:
    text = json.loads(settings_to_json(load_settings(env={})))
    text["internal_listen"] = {"listen": ["0.0.0.0", 9123]}
    with pytest.raises(ValueError, match="INTERNAL_LISTEN"):
        settings_from_json(json.dumps(text))
