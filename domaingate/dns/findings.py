"""What a DNS check reports: result codes, a `Finding` per check, the `CheckReport` around them.

The codes are the spec's `last_check_error.code` values. `CheckReport.error` picks the one finding
a domain's `last_check_error` shows, so its priority order is part of the contract: a definitive
problem the tenant must fix always wins over a transient one that retrying may clear.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Code(enum.StrEnum):
    MISSING_TXT = "missing_txt"
    TOKEN_MISMATCH = "token_mismatch"  # noqa: S105 - a result code, not a secret
    CNAME_MISSING = "cname_missing"
    CNAME_WRONG_TARGET = "cname_wrong_target"
    CNAME_PROXIED = "cname_proxied"
    CONFLICTING_A = "conflicting_a"
    A_WRONG_TARGET = "a_wrong_target"
    CAA_FORBIDS_ISSUANCE = "caa_forbids_issuance"
    NXDOMAIN = "nxdomain"
    DNS_TIMEOUT = "dns_timeout"
    DNS_ERROR = "dns_error"
    RESOLVER_DISAGREEMENT = "resolver_disagreement"
    DNS_MOVED = "dns_moved"


# Failures that say nothing about what the tenant published: retrying may clear them, and they
# never move a domain that is already verified.
TRANSIENT: frozenset[Code] = frozenset(
    {Code.DNS_TIMEOUT, Code.DNS_ERROR, Code.RESOLVER_DISAGREEMENT}
)

# Most important first. The name not existing explains every other failure, so it leads; routing
# comes before ownership because a tenant fixes the records in that order.
PRIORITY: tuple[Code, ...] = (
    Code.NXDOMAIN,
    Code.CNAME_MISSING,
    Code.CNAME_WRONG_TARGET,
    Code.CNAME_PROXIED,
    Code.A_WRONG_TARGET,
    Code.CONFLICTING_A,
    Code.MISSING_TXT,
    Code.TOKEN_MISMATCH,
    Code.CAA_FORBIDS_ISSUANCE,
    Code.DNS_MOVED,
    Code.RESOLVER_DISAGREEMENT,
    Code.DNS_ERROR,
    Code.DNS_TIMEOUT,
)
_RANK = {code: rank for rank, code in enumerate(PRIORITY)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """The verdict of one check ("txt", "cname", "address", "caa" or "ns")."""

    check: str
    ok: bool
    code: Code | None
    message: str

    def __post_init__(self) -> None:
        if self.ok != (self.code is None):
            raise ValueError("a finding has a code exactly when it is not ok")

    def as_dict(self) -> dict[str, object]:
        return {
            "check": self.check,
            "ok": self.ok,
            "code": None if self.code is None else self.code.value,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """Every finding of one check of one hostname, against every configured resolver."""

    hostname: str
    findings: tuple[Finding, ...]
    provider: str | None

    @property
    def ok(self) -> bool:
        return all(finding.ok for finding in self.findings)

    @property
    def error(self) -> Finding | None:
        failing = [(_RANK[f.code], i, f) for i, f in enumerate(self.findings) if f.code is not None]
        if not failing:
            return None
        # Ties keep the findings' own order, so the same DNS always yields the same error.
        return min(failing, key=lambda item: (item[0], item[1]))[2]

    @property
    def transient(self) -> bool:
        codes = [f.code for f in self.findings if f.code is not None]
        return bool(codes) and all(code in TRANSIENT for code in codes)

    def as_dict(self) -> dict[str, object]:
        error = self.error
        return {
            "hostname": self.hostname,
            "ok": self.ok,
            "transient": self.transient,
            "provider": self.provider,
            "error": None if error is None else error.as_dict(),
            "findings": [finding.as_dict() for finding in self.findings],
        }
