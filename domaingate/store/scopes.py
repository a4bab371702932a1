"""What a write transaction locks: the names, tenants and rows its reads-then-writes depend on.

`Database.write(*scopes)` takes each scope's lock before the transaction's first statement and
keeps it until the end, so two writers that name a common scope run one after the other, and
writers with nothing in common run at once. A write that names no scope locks everything, as
every write did before scopes existed. SQLite has one writer at a time anyway and ignores them;
PostgreSQL takes them as advisory locks (`domaingate.store.postgres.database`).

What each kind guards (the store's modules name them):

- `hostname`: everything decided from the rows of one name: the claim rules (who holds it, the
  cool-down, first to verify wins and the rivals' loss), and the compare-and-set of a domain's
  status (a domain's hostname never changes, so its name's lock covers its row).
- `tenant`: the counts over one tenant's rows: the domain quotas (per tenant and per app: an app
  belongs to one tenant) and the attach and verify rate limits.
- `row`: a write whose statements each stand alone (an upsert, a conditional update) needs no
  more than its own row, named by table and key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class Kind(IntEnum):
    # The values are part of every lock's key, the same in every process of a fleet: never
    # renumber them.
    HOSTNAME = 1
    TENANT = 2
    ROW = 3


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    kind: Kind
    value: str

    @classmethod
    def hostname(cls, name: str) -> Scope:
        return cls(Kind.HOSTNAME, name)

    @classmethod
    def tenant(cls, tenant_id: int) -> Scope:
        return cls(Kind.TENANT, str(tenant_id))

    @classmethod
    def row(cls, table: str, key: str) -> Scope:
        return cls(Kind.ROW, f"{table}:{key}")

    @property
    def key(self) -> tuple[int, int]:
        """The lock's two 32-bit keys: the kind, and a hash of the value. Two values that share a
        hash only wait for each other without need; they never skip a wait."""
        digest = hashlib.blake2b(self.value.encode("utf-8", "surrogateescape"), digest_size=4)
        return int(self.kind), int.from_bytes(digest.digest(), "big", signed=True)


def hostnames(names: Iterable[str]) -> tuple[Scope, ...]:
    """A scope for each of `names`, once each."""
    return tuple(Scope.hostname(name) for name in dict.fromkeys(names))


def keys(scopes: tuple[Scope, ...]) -> list[tuple[int, int]]:
    """The scopes' lock keys, each once, in the one order every writer takes them: two writers
    that share two keys never hold one each while waiting for the other's."""
    return sorted({scope.key for scope in scopes})
