"""CAA evaluation (RFC 8659): may one of the allowed CAs issue a certificate for a name?

The lookup side (which record set is relevant) lives in the checker: it is the first non-empty
CAA RRset found at the name, then each parent, up to but not including the root. This module only
judges such a set. Wildcards are never attached, so `issuewild` never matters here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ISSUER_CRITICAL = 0x80
# Properties a CA must understand before honouring the critical flag: RFC 8659 (issue, issuewild,
# iodef), RFC 9495 (issuemail) and the CA/Browser Forum's contact properties.
KNOWN_TAGS = frozenset(
    {"issue", "issuewild", "iodef", "issuemail", "issuevmc", "contactemail", "contactphone"}
)


@dataclass(frozen=True, slots=True)
class CaaRecord:
    flags: int
    tag: str
    value: str

    def __str__(self) -> str:
        return f'{self.flags} {self.tag} "{self.value}"'


@dataclass(frozen=True, slots=True)
class CaaVerdict:
    allowed: bool
    message: str


def issuer_domain(value: str) -> str:
    """The issuer-domain-name of an `issue` value, lower-cased; "" when it names no CA.

    `letsencrypt.org; accounturi=…` names letsencrypt.org; `;` names nobody. A value that is not
    a domain name authorises nobody, like an empty one.
    """
    name = value.split(";", 1)[0].strip().lower().rstrip(".")
    labels = name.split(".")
    if not name or not all(label and label.replace("-", "").isalnum() for label in labels):
        return ""
    return name


def candidate_names(name: str) -> list[str]:
    """The name, then each parent, up to but not including the root: where CAA is looked for."""
    labels = name.lower().rstrip(".").split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def evaluate(owner: str, records: Sequence[CaaRecord], allowed_cas: Sequence[str]) -> CaaVerdict:
    """Judge the relevant CAA RRset found at `owner` for a non-wildcard certificate."""
    wanted = [ca.lower().rstrip(".") for ca in allowed_cas]
    if not wanted:
        return CaaVerdict(
            True, "No CA is configured (DOMAINGATE_ALLOWED_CAS), so CAA is not judged."
        )
    suggestion = " ".join(f'{owner}. CAA 0 issue "{ca}"' for ca in wanted[:1])
    for record in records:
        if record.flags & ISSUER_CRITICAL and record.tag.lower() not in KNOWN_TAGS:
            return CaaVerdict(
                False,
                f"The CAA record {owner}. CAA {record} is marked critical but its property "
                f"{record.tag!r} is unknown to certificate authorities, so none will issue. "
                "Remove that record or clear its flag (use 0).",
            )
    issuers = [issuer_domain(r.value) for r in records if r.tag.lower() == "issue"]
    if not issuers:
        return CaaVerdict(True, f"The CAA records at {owner} do not restrict who may issue.")
    granted = [ca for ca in wanted if ca in issuers]
    if granted:
        return CaaVerdict(True, f"The CAA records at {owner} allow {granted[0]} to issue.")
    named = sorted({issuer for issuer in issuers if issuer})
    allows = f"allow only {', '.join(named)}" if named else "forbid every certificate authority"
    return CaaVerdict(
        False,
        f"The CAA records at {owner} {allows}, so {' or '.join(wanted)} cannot issue "
        f"a certificate. Add the record {suggestion} (keep your other issue records if you "
        "still need them).",
    )
