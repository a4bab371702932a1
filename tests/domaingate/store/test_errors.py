"""Each backend's driver errors become the store's one tree (`domaingate.store.errors`), with the
cause logs and metrics name."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from psycopg import errors as pg_errors

from domaingate.store.errors import (
    StoreBusy,
    StoreConflict,
    StoreError,
    StoreFull,
    StoreUnavailable,
    StoreUnreachable,
    failure_cause,
)
from domaingate.store.postgres.adapter import store_error as postgres_error
from domaingate.store.sqlite.database import store_error as sqlite_error


def operational(message: str, code: int) -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code
    return exc


@pytest.mark.parametrize(
    ("exc", "kind", "cause"),
    [
        (operational("database is locked", sqlite3.SQLITE_BUSY), StoreBusy, "locked"),
        # An extended code keeps the primary one in its low byte (SQLITE_BUSY_SNAPSHOT).
        (operational("snapshot", sqlite3.SQLITE_BUSY | (2 << 8)), StoreBusy, "locked"),
        (operational("database or disk is full", sqlite3.SQLITE_FULL), StoreFull, "full"),
        (operational("disk I/O error", sqlite3.SQLITE_IOERR), StoreUnavailable, "other"),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), StoreConflict, "other"),
        (sqlite3.DatabaseError("file is not a database"), StoreError, "other"),
    ],
)
def test_sqlites_errors(exc: sqlite3.Error, kind: type[StoreError], cause: str) -> None:
    error = sqlite_error(exc)
    assert type(error) is kind
    assert failure_cause(error) == cause
    assert str(error) == str(exc)


@pytest.mark.parametrize(
    ("exc", "kind", "cause"),
    [
        (pg_errors.UniqueViolation("duplicate key"), StoreConflict, "other"),
        (pg_errors.SerializationFailure("could not serialize"), StoreBusy, "locked"),
        (pg_errors.LockNotAvailable("lock timeout"), StoreBusy, "locked"),
        (psycopg.OperationalError("server closed the connection"), StoreUnreachable, "unreachable"),
        (pg_errors.UndefinedTable("no such table"), StoreError, "other"),
    ],
)
def test_postgresqls_errors(exc: psycopg.Error, kind: type[StoreError], cause: str) -> None:
    error = postgres_error(exc)
    assert type(error) is kind
    assert failure_cause(error) == cause


def test_only_operating_conditions_are_unavailable() -> None:
    """The API answers 503 (retry) for these alone; a conflict or a corrupt file is no
    condition a retry mends."""
    assert issubclass(StoreBusy, StoreUnavailable)
    assert issubclass(StoreFull, StoreUnavailable)
    assert issubclass(StoreUnreachable, StoreUnavailable)
    assert not issubclass(StoreConflict, StoreUnavailable)
