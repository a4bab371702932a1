"""Parsing and validating what clients send: JSON bodies, query parameters, cursors, names."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from domaingate.apps import check_app
from domaingate.errors import InvalidHostname, InvalidRequest, PayloadTooLarge
from domaingate.hostnames import normalize
from domaingate.states import Status

MAX_BODY = 64 * 1024
MAX_HOSTNAME_INPUT = 1024
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
# SQLite's INTEGER is 64-bit signed: a cursor past it could never name a row.
MAX_ROW_ID = 2**63 - 1
MAX_NUMBER_TEXT = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachRequest:
    domain: str
    app: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListQuery:
    app: str | None
    status: Status | None
    limit: int
    after_id: int


async def read_json_object(request: web.Request) -> dict[str, Any]:
    body = await request.read()  # raises 413 past client_max_size
    if len(body) > MAX_BODY:
        raise PayloadTooLarge(MAX_BODY)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, UnicodeDecodeError and integers past Python's
        # digit limit (`{"domain": 1111…}` with thousands of digits).
        raise InvalidRequest(f"the body is not valid JSON: {str(exc)[:200]}") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object")
    return data


def parse_attach(data: Mapping[str, Any]) -> AttachRequest:
    unknown = sorted(set(data) - {"domain", "app"})
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(unknown)[:200]}", fields=unknown[:20])
    missing = [name for name in ("domain", "app") if name not in data]
    if missing:
        raise InvalidRequest(f"missing fields: {', '.join(missing)}", fields=missing)
    domain = data["domain"]
    if not isinstance(domain, str):
        raise InvalidRequest("domain must be a string", fields=["domain"])
    if len(domain) > MAX_HOSTNAME_INPUT:
        raise InvalidHostname(domain, f"it is longer than {MAX_HOSTNAME_INPUT} characters")
    return AttachRequest(domain=domain, app=check_app(data["app"]))


def path_hostname(request: web.Request) -> str:
    raw = request.match_info["domain"]
    if len(raw) > MAX_HOSTNAME_INPUT:
        raise InvalidHostname(raw, f"it is longer than {MAX_HOSTNAME_INPUT} characters")
    return normalize(raw)


def whole_number(text: str, name: str, low: int, high: int) -> int:
    """`text` as a whole number from `low` to `high`, parsed once; else InvalidRequest (400).

    The value is range-checked, not the text: `000499999999` is 499999999 (out of range), and
    a number no parameter could hold never reaches the database to overflow there.
    """
    # isascii: str.isdigit() also accepts '²' (which int() refuses) and other scripts' digits.
    # The length cap keeps int() from parsing a megabyte of zeros.
    if text.isascii() and text.isdigit() and len(text) <= MAX_NUMBER_TEXT:
        number = int(text)
        if low <= number <= high:
            return number
    raise InvalidRequest(f"{name} must be a whole number from {low} to {high}", fields=[name])


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"d:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        prefix, _, number = raw.partition(":")
        if prefix != "d":
            raise ValueError(raw)
        return whole_number(number, "cursor", 0, MAX_ROW_ID)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest("cursor is not one this API returned", fields=["cursor"]) from exc


def parse_list_query(query: Mapping[str, str]) -> ListQuery:
    unknown = sorted(set(query) - {"app", "status", "limit", "cursor"})
    if unknown:
        raise InvalidRequest(f"unknown query parameters: {', '.join(unknown)[:200]}")
    app = check_app(query["app"]) if "app" in query else None
    status = None
    if "status" in query:
        try:
            status = Status(query["status"])
        except ValueError:
            status = None
        if status is None or status is Status.REMOVED:
            choices = ", ".join(s.value for s in Status if s is not Status.REMOVED)
            raise InvalidRequest(f"status must be one of {choices}", fields=["status"])
    limit = DEFAULT_LIMIT
    if "limit" in query:
        limit = whole_number(query["limit"], "limit", 1, MAX_LIMIT)
    after_id = decode_cursor(query["cursor"]) if "cursor" in query else 0
    return ListQuery(app=app, status=status, limit=limit, after_id=after_id)
