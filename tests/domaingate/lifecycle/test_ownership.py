"""How a claim proves ownership: its method by kind of name, and its token."""

from __future__ import annotations

import re

from domaingate.hostnames import Kind
from domaingate.lifecycle.ownership import new_txt_token, verification_method


def test_an_apex_always_proves_by_txt_and_a_subdomain_by_cname_unless_txt_is_required() -> None:
    assert verification_method(Kind.APEX, require_txt=False) == "txt"
    assert verification_method(Kind.SUBDOMAIN, require_txt=False) == "cname"
    assert verification_method(Kind.SUBDOMAIN, require_txt=True) == "txt"


def test_tokens_are_prefixed_and_never_repeat() -> None:
    tokens = {new_txt_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(re.fullmatch(r"dg_[0-9a-f]{64}", token) for token in tokens)
