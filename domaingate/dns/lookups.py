"""Raw DNS lookups: one query at a time against one resolver, CNAME chains followed hop by hop.

Nothing here judges what it sees. `observe()` gathers everything one check needs from one resolver
in parallel; each query stops at a shared deadline, so a silent resolver costs the budget once,
not once per query, and holds a slot of the process-wide cap (`inflight.QUERIES`) while it is
out. Chains are followed by re-asking for the last target, which gives the same
answers from an authoritative server (which stops at its zone's edge) as from a recursive one.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CAA
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA

from domaingate.dns.caa import CaaRecord, candidate_names
from domaingate.dns.inflight import QUERIES
from domaingate.settings import Listen

MAX_CHAIN = 8
# Retransmit over UDP after this long, doubling each time: one lost datagram must not cost a check.
FIRST_ATTEMPT = 1.0
EDNS_PAYLOAD = 1232


class Outcome(enum.Enum):
    ANSWER = "answer"  # NOERROR, with or without records of the type asked for
    NXDOMAIN = "nxdomain"  # the name at the end of the chain does not exist
    TIMEOUT = "timeout"
    ERROR = "error"  # SERVFAIL, REFUSED, unreachable, malformed


@dataclass(frozen=True, slots=True)
class Answer:
    """What one resolver said about `name`/`rdtype`, after following any CNAME chain."""

    name: str
    rdtype: str
    outcome: Outcome
    chain: tuple[str, ...] = ()  # CNAME targets in the order followed
    records: tuple[dns.rdata.Rdata, ...] = ()  # of type `rdtype`, at the end of the chain
    detail: str = ""  # why it failed, or why the chain was cut short

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.TIMEOUT, Outcome.ERROR)

    @property
    def final(self) -> str:
        return self.chain[-1] if self.chain else self.name

    def addresses(self) -> tuple[str, ...]:
        return tuple(
            r.address
            for r in self.records
            if isinstance(r, dns.rdtypes.IN.A.A | dns.rdtypes.IN.AAAA.AAAA)
        )

    def texts(self) -> tuple[bytes, ...]:
        # A TXT record's value is the concatenation of its character-strings (RFC 7208 §3.3).
        return tuple(
            b"".join(r.strings) for r in self.records if isinstance(r, dns.rdtypes.ANY.TXT.TXT)
        )

    def caa(self) -> tuple[CaaRecord, ...]:
        return tuple(
            CaaRecord(r.flags, r.tag.decode("ascii", "replace"), r.value.decode("utf-8", "replace"))
            for r in self.records
            if isinstance(r, dns.rdtypes.ANY.CAA.CAA)
        )

    def hosts(self) -> tuple[str, ...]:
        return tuple(_text(r.target) for r in self.records if isinstance(r, dns.rdtypes.ANY.NS.NS))


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything one resolver said for one check."""

    resolver: Listen
    a: Answer
    aaaa: Answer
    txt: Answer | None
    caa: tuple[Answer, ...]  # at the name, then each parent (see `candidate_names`)
    ns: Answer


class _Failed(Exception):
    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


async def _query(
    server: Listen, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, deadline: float
) -> dns.message.Message:
    loop = asyncio.get_running_loop()
    attempt = FIRST_ATTEMPT
    asked = False
    while deadline - loop.time() > 0:
        query = dns.message.make_query(qname, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
        try:
            # Waiting for a slot counts against the check's budget, not against the attempt:
            # the retransmit timer starts once the query can be sent.
            await QUERIES.acquire(deadline)
        except TimeoutError:
            break
        asked = True
        try:
            # One timer per attempt: the retransmit's, cut short at the check's deadline.
            async with asyncio.timeout_at(min(deadline, loop.time() + attempt)):
                response, _ = await dns.asyncquery.udp_with_fallback(
                    query, server.host, port=server.port
                )
        except TimeoutError:
            attempt *= 2
            continue
        except OSError as exc:
            raise _Failed(Outcome.ERROR, f"could not be reached ({exc.strerror or exc})") from exc
        except (dns.exception.DNSException, ValueError, EOFError) as exc:
            raise _Failed(Outcome.ERROR, f"sent a malformed answer ({exc})") from exc
        finally:
            # asyncio closes the query's socket on the loop's next turn, not at once.
            QUERIES.release_soon()
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise _Failed(Outcome.ERROR, f"answered {dns.rcode.to_text(rcode)}")
        return response
    if not asked:
        raise _Failed(Outcome.TIMEOUT, "was not asked in time: too many DNS queries were in flight")
    raise _Failed(Outcome.TIMEOUT, "did not answer in time")


async def lookup(
    server: Listen,
    name: str,
    rdtype: str,
    deadline: float,
    *,
    stop_at: str | None = None,
) -> Answer:
    """Ask `server` for `name`/`rdtype`, following CNAMEs; never raises for DNS trouble.

    The walk ends early at `stop_at` (the platform's target: what lies behind it is the
    platform's business, and in tests its zone may not be served at all).
    """
    qtype = dns.rdatatype.from_text(rdtype)
    start = dns.name.from_text(name)
    stop = dns.name.from_text(stop_at) if stop_at else None
    chain: list[dns.name.Name] = []
    current = start

    def answer(
        outcome: Outcome, records: Sequence[dns.rdata.Rdata] = (), detail: str = ""
    ) -> Answer:
        texts = tuple(_text(n) for n in chain)
        return Answer(name, rdtype, outcome, texts, tuple(records), detail)

    for _ in range(MAX_CHAIN + 1):
        try:
            message = await _query(server, current, qtype, deadline)
        except _Failed as failure:
            return answer(failure.outcome, detail=failure.detail)
        advanced = False
        while current != stop:
            alias = message.get_rrset(
                message.answer, current, dns.rdataclass.IN, dns.rdatatype.CNAME
            )
            if alias is None:
                break
            target: dns.name.Name = alias[0].target
            if target == start or target in chain:
                return answer(
                    Outcome.ANSWER, detail=f"the CNAME chain loops back to {_text(target)}"
                )
            if len(chain) == MAX_CHAIN:
                return answer(Outcome.ANSWER, detail=f"the CNAME chain is longer than {MAX_CHAIN}")
            chain.append(target)
            current = target
            advanced = True
        if current == stop:
            return answer(Outcome.ANSWER)
        found = message.get_rrset(message.answer, current, dns.rdataclass.IN, qtype)
        if message.rcode() == dns.rcode.NXDOMAIN:
            return answer(Outcome.NXDOMAIN)
        # A server that handed over a CNAME but not what lies behind it stopped at its zone's
        # edge: ask again for the target.
        if found is not None or not advanced:
            return answer(Outcome.ANSWER, list(found or ()))
    return answer(Outcome.ANSWER, detail=f"the CNAME chain is longer than {MAX_CHAIN}")


async def observe(
    server: Listen,
    *,
    name: str,
    txt_name: str | None,
    registrable: str,
    stop_at: str | None,
    deadline: float,
) -> Observation:
    """Run every lookup one check needs against one resolver, all at once."""
    caa_names = candidate_names(name)
    a, aaaa, ns, *rest = await asyncio.gather(
        lookup(server, name, "A", deadline, stop_at=stop_at),
        lookup(server, name, "AAAA", deadline, stop_at=stop_at),
        lookup(server, registrable, "NS", deadline),
        *(lookup(server, label, "CAA", deadline) for label in caa_names),
        *([lookup(server, txt_name, "TXT", deadline)] if txt_name else []),
    )
    caa = tuple(rest[: len(caa_names)])
    txt = rest[len(caa_names)] if txt_name else None
    return Observation(resolver=server, a=a, aaaa=aaaa, txt=txt, caa=caa, ns=ns)
