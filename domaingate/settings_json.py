"""Settings as JSON: what a process loaded, rebuilt the same in a process it starts.

The gate workers take their parent's Settings this way (over an inherited pipe, never argv or
the environment, which would show the database password and the admin token to other local
users). Each value keeps its type: a Path is not a str, DB's target stays a SQLite file or a
PostgreSQL server, a Listen is not a string to parse again, a tuple is not a list.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from domaingate.settings import Listen, Settings
from domaingate.targets import PostgresServer, SqliteFile

_PATH, _LISTEN, _TUPLE, _SQLITE, _POSTGRES = "path", "listen", "tuple", "sqlite", "postgresql"


def settings_to_json(settings: Settings) -> str:
    return json.dumps({f.name: _encode(getattr(settings, f.name)) for f in fields(Settings)})


def settings_from_json(text: str) -> Settings:
    values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError("settings JSON is not an object")
    return Settings(**{name: _decode(value) for name, value in values.items()})


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, Path):
        return {_PATH: str(value)}
    if isinstance(value, Listen):
        return {_LISTEN: [value.host, value.port]}
    if isinstance(value, SqliteFile):
        return {_SQLITE: str(value.path)}
    if isinstance(value, PostgresServer):
        return {_POSTGRES: value.url}
    if isinstance(value, tuple):
        return {_TUPLE: [_encode(item) for item in value]}
    # A new kind of setting must be given its encoding here, not be passed on approximately.
    raise TypeError(f"no JSON form for a setting of type {type(value).__name__}")


def _decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    ((kind, inner),) = value.items()
    if kind == _PATH:
        return Path(inner)
    if kind == _LISTEN:
        host, port = inner
        return Listen(host, port)
    if kind == _SQLITE:
        return SqliteFile(Path(inner))
    if kind == _POSTGRES:
        return PostgresServer(inner)
    if kind == _TUPLE:
        return tuple(_decode(item) for item in inner)
    raise ValueError(f"unknown settings JSON value {kind!r}")
