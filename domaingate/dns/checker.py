"""The DNS check: what a domain's records must look like, and the verdict on what resolvers say.

`DnsChecker.check()` asks every configured resolver for everything at once (see `lookups`),
judges each resolver's answers on its own, then merges the verdicts per check: a check passes only
when every resolver sees it pass, and resolvers that see different things are reported as such.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from domaingate.dns import caa, cloudflare, providers
from domaingate.dns.findings import TRANSIENT, CheckReport, Code, Finding
from domaingate.dns.lookups import Answer, Observation, Outcome, observe
from domaingate.hostnames import Kind, classify
from domaingate.settings import Listen, Settings


@dataclass(frozen=True, slots=True, kw_only=True)
class Expectation:
    """What one domain's DNS must show."""

    hostname: str
    kind: Kind
    cname_target: str
    txt_name: str
    txt_value: str
    require_txt: bool
    edge_ipv4: tuple[str, ...]
    edge_ipv6: tuple[str, ...]


def _bad(check: str, code: Code, message: str) -> Finding:
    return Finding(check=check, ok=False, code=code, message=message)


def _good(check: str, message: str) -> Finding:
    return Finding(check=check, ok=True, code=None, message=message)


def _same_name(left: str, right: str) -> bool:
    return left.lower().rstrip(".") == right.lower().rstrip(".")


def _canonical(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def _shown(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "nothing"


class DnsChecker:
    def __init__(
        self, resolvers: Sequence[Listen], *, allowed_cas: Sequence[str], timeout: float = 5.0
    ) -> None:
        if not resolvers:
            raise ValueError("at least one resolver is needed")
        for resolver in resolvers:
            try:
                ipaddress.ip_address(resolver.host)
            except ValueError:
                raise ValueError(f"resolver {resolver} is not an IP address") from None
        if not timeout > 0:
            raise ValueError("the timeout must be positive")
        self.resolvers = tuple(resolvers)
        self.allowed_cas = tuple(allowed_cas)
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> DnsChecker:
        return cls(
            settings.resolvers, allowed_cas=settings.allowed_cas, timeout=settings.dns_timeout
        )

    async def check(self, expectation: Expectation) -> CheckReport:
        """Run every check against every resolver within `timeout` seconds; never raises for DNS."""
        deadline = asyncio.get_running_loop().time() + self.timeout
        exp = expectation
        try:
            registrable = classify(exp.hostname).registrable
        except ValueError:
            registrable = exp.hostname
        apex = exp.kind is Kind.APEX
        observations = await asyncio.gather(
            *(
                observe(
                    resolver,
                    name=exp.hostname,
                    txt_name=exp.txt_name if apex or exp.require_txt else None,
                    registrable=registrable,
                    stop_at=None if apex else exp.cname_target,
                    deadline=deadline,
                )
                for resolver in self.resolvers
            )
        )
        judges = [self._address if apex else self._cname]
        if apex or exp.require_txt:
            judges.append(self._txt)
        judges.append(self._caa)
        findings = [_merge([(o.resolver, judge(exp, o)) for o in observations]) for judge in judges]
        provider, ns_finding = _nameservers(registrable, observations)
        return CheckReport(
            hostname=exp.hostname, findings=(*findings, ns_finding), provider=provider
        )

    def _failure(self, check: str, answer: Answer, resolver: Listen) -> Finding:
        query = f"the {answer.rdtype} query for {answer.final}"
        if answer.outcome is Outcome.TIMEOUT:
            return _bad(
                check,
                Code.DNS_TIMEOUT,
                f"The resolver {resolver} did not answer {query} within "
                f"{self.timeout:g} s. This is usually temporary and the check runs again; if it "
                "persists, make sure your DNS provider's name servers answer for the domain.",
            )
        return _bad(
            check,
            Code.DNS_ERROR,
            f"The resolver {resolver} {answer.detail} for {query}. Make sure your DNS "
            "provider serves the zone (a broken DNSSEC setup causes SERVFAIL); the check runs "
            "again.",
        )

    def _cname(self, exp: Expectation, obs: Observation) -> Finding:
        a, name, target = obs.a, exp.hostname, exp.cname_target
        if a.failed:
            return self._failure("cname", a, obs.resolver)
        add = f"Add a CNAME record: name {name}, value {target}."
        if any(_same_name(hop, target) for hop in a.chain):
            via = f" (via {' → '.join(a.chain[:-1])})" if len(a.chain) > 1 else ""
            return _good("cname", f"{name} is a CNAME to {target}{via}.")
        if a.chain:
            note = f"; {a.detail}" if a.detail else ""
            return _bad(
                "cname",
                Code.CNAME_WRONG_TARGET,
                f"{name} is a CNAME to {' → '.join(a.chain)}{note}, not to {target}. "
                f"Change the CNAME record for {name} to the value {target}.",
            )
        if a.outcome is Outcome.NXDOMAIN:
            return _bad("cname", Code.NXDOMAIN, f"{name} does not exist in DNS. {add}")
        addresses = a.addresses() + (() if obs.aaaa.failed else obs.aaaa.addresses())
        if cloudflare.all_cloudflare(addresses):
            return _bad(
                "cname",
                Code.CNAME_PROXIED,
                f"{name} answers with Cloudflare proxy addresses ({_shown(addresses)}), "
                f"which hide the CNAME and terminate TLS elsewhere. In Cloudflare, set the record "
                f'for {name} to "DNS only" (grey cloud) as a CNAME with the value {target}.',
            )
        if addresses:
            return _bad(
                "cname",
                Code.CNAME_MISSING,
                f"{name} has A/AAAA records ({_shown(addresses)}) instead of a CNAME. "
                f"Delete them and add a CNAME record: name {name}, value {target}.",
            )
        return _bad("cname", Code.CNAME_MISSING, f"{name} has no CNAME record. {add}")

    def _address(self, exp: Expectation, obs: Observation) -> Finding:
        name = exp.hostname
        for answer in (obs.a, obs.aaaa):
            if answer.failed:
                return self._failure("address", answer, obs.resolver)
        wanted = [("A", ip) for ip in exp.edge_ipv4] + [("AAAA", ip) for ip in exp.edge_ipv6]
        publish = "; ".join(f"{kind} record: name {name}, value {ip}" for kind, ip in wanted)
        if obs.a.outcome is Outcome.NXDOMAIN and not obs.a.chain:
            return _bad(
                "address",
                Code.NXDOMAIN,
                f"{name} does not exist in DNS. Make sure the domain is registered and "
                f"delegated to your DNS provider, then add: {publish or 'the edge addresses'}.",
            )
        if not wanted:
            return _bad(
                "address",
                Code.A_WRONG_TARGET,
                "The platform has no edge addresses configured (DOMAINGATE_EDGE_IPV4 / "
                "DOMAINGATE_EDGE_IPV6), so an apex domain cannot be verified; ask the platform "
                "operator to set them.",
            )
        # Compare canonical forms: 2001:DB8:0::1 and 2001:db8::1 are the same edge.
        edge = {_canonical(ip) for ip in (*exp.edge_ipv4, *exp.edge_ipv6)}
        seen = [("A", _canonical(ip)) for ip in obs.a.addresses()] + [
            ("AAAA", _canonical(ip)) for ip in obs.aaaa.addresses()
        ]
        good = [f"{kind} {ip}" for kind, ip in seen if ip in edge]
        extra = [f"{kind} {ip}" for kind, ip in seen if ip not in edge]
        if good and not extra:
            return _good("address", f"{name} points at the platform ({_shown(good)}).")
        if good:
            return _bad(
                "address",
                Code.CONFLICTING_A,
                f"{name} also points elsewhere ({_shown(extra)}) besides the platform "
                f"({_shown(good)}), so some visitors and the certificate authority reach the "
                f"wrong server. Delete the records for {name} with the values {_shown(extra)}.",
            )
        if extra and cloudflare.all_cloudflare(ip for _, ip in seen):
            return _bad(
                "address",
                Code.CNAME_PROXIED,
                f"{name} answers with Cloudflare proxy addresses ({_shown(extra)}). In "
                f'Cloudflare, set its records to "DNS only" (grey cloud) with these values: '
                f"{publish}.",
            )
        if extra:
            return _bad(
                "address",
                Code.A_WRONG_TARGET,
                f"{name} points at {_shown(extra)}, not at the platform. Replace those "
                f"records with: {publish}.",
            )
        return _bad("address", Code.A_WRONG_TARGET, f"{name} has no A records. Add: {publish}.")

    def _txt(self, exp: Expectation, obs: Observation) -> Finding:
        txt, name, token = obs.txt, exp.txt_name, exp.txt_value
        if txt is None:
            raise AssertionError("the TXT record was not looked up")
        if txt.failed:
            return self._failure("txt", txt, obs.resolver)
        values = txt.texts()
        expected = token.encode("utf-8")
        # Constant time: the token is the secret that proves ownership.
        if any(hmac.compare_digest(value, expected) for value in values):
            return _good("txt", f"The TXT record at {name} holds this domain's token.")
        if not values:
            return _bad(
                "txt",
                Code.MISSING_TXT,
                f"There is no TXT record at {name}. Add a TXT record: name {name}, value {token}.",
            )
        found = ", ".join(repr(v.decode("utf-8", "replace")[:80]) for v in values[:3])
        return _bad(
            "txt",
            Code.TOKEN_MISMATCH,
            f"The TXT record at {name} holds {found}, not this domain's token. Change it to: "
            f"name {name}, value {token}.",
        )

    def _caa(self, exp: Expectation, obs: Observation) -> Finding:
        # RFC 8659: the relevant set is the first non-empty one climbing from the name. A lookup
        # that failed below it leaves the question open.
        for answer in obs.caa:
            if answer.failed:
                return self._failure("caa", answer, obs.resolver)
            records = answer.caa()
            if records:
                verdict = caa.evaluate(answer.final, records, self.allowed_cas)
                code = None if verdict.allowed else Code.CAA_FORBIDS_ISSUANCE
                return Finding(check="caa", ok=verdict.allowed, code=code, message=verdict.message)
        return _good("caa", f"No CAA records at {exp.hostname} or its parents: any CA may issue.")


def _merge(views: Sequence[tuple[Listen, Finding]]) -> Finding:
    """One finding from every resolver's verdict on the same check."""
    definitive = [(r, f) for r, f in views if f.code not in TRANSIENT]
    verdicts = {f.code for _, f in definitive}
    if len(verdicts) > 1:
        check = views[0][1].check
        seen = "; ".join(f"{r} sees {f.code or 'it correct'}" for r, f in definitive)
        wrong = next(f for _, f in definitive if f.code is not None)
        return _bad(
            check,
            Code.RESOLVER_DISAGREEMENT,
            f"Resolvers disagree ({seen}). A recent DNS change is probably still "
            "spreading: wait until the old records' TTL has passed; the check runs again. "
            f"Where it is wrong: {wrong.message}",
        )
    for _, finding in definitive:
        if not finding.ok:
            return finding
    for _, finding in views:
        if not finding.ok:
            return finding
    return views[0][1]


def _nameservers(
    registrable: str, observations: Sequence[Observation]
) -> tuple[str | None, Finding]:
    hosts = next((o.ns.hosts() for o in observations if o.ns.hosts()), ())
    provider = providers.detect(hosts)
    listed = ", ".join(sorted(hosts))
    if provider:
        message = f"DNS for {registrable} is hosted at {provider} ({listed})."
    elif hosts:
        message = f"DNS for {registrable} is served by {listed}."
    else:
        message = f"The name servers of {registrable} could not be found; this does not matter."
    return provider, _good("ns", message)
