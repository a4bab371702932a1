"""How a claim proves that its tenant owns the name: the method its kind of name needs, and the
token a TXT record publishes."""

from __future__ import annotations

import secrets

from domaingate.hostnames import Kind

TOKEN_PREFIX = "dg_"  # noqa: S105 (a prefix, not a secret)


def verification_method(kind: Kind, *, require_txt: bool) -> str:
    """`txt` for an apex (its CNAME cannot be used) or where the platform asks for TXT
    everywhere (REQUIRE_TXT); else `cname`, the routing record proving ownership itself."""
    return "txt" if kind is Kind.APEX or require_txt else "cname"


def new_txt_token() -> str:
    """A fresh ownership token: unguessable, so nobody can publish another tenant's."""
    return TOKEN_PREFIX + secrets.token_hex(32)
