"""Answers of the internal listener, built once: status line and headers as bytes.

A `Reply` holds everything but the `Date` and `Connection` lines, which the listener adds when it
writes: the gate's fixed answers (allowed, denied, unknown host, a route per app) are then no
more than a few byte joins per request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus

TEXT = "text/plain; charset=utf-8"
JSON = "application/json; charset=utf-8"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    status: int
    head: bytes  # the status line and headers, each line ending in CRLF; no blank line
    body: bytes


def reply(status: int, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> Reply:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    head = "".join(line + "\r\n" for line in lines).encode("latin-1")
    return Reply(status=status, head=head, body=body)


def text_reply(status: int, body: bytes) -> Reply:
    return reply(status, [("Content-Type", TEXT)], body)


def json_reply(status: int, body: object) -> Reply:
    return reply(status, [("Content-Type", JSON)], json.dumps(body).encode())


def error_reply(status: int) -> Reply:
    """aiohttp's plain-text form of an HTTP error ("404: Not Found")."""
    return text_reply(status, f"{status}: {HTTPStatus(status).phrase}".encode())
