"""Writing state moves: each a compare-and-set on its source status, its event logged in the
same transaction, and the batched write that both the DNS path and the certificate path use.

A batch reads the statuses of its domains once, inside its write transaction (which holds the
lock of each domain's name, `Scope.hostname`, so no other writer can move a domain between that
read and these writes), writes each kind of change in one `executemany`, then the moves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from domaingate.lifecycle.moves import Move
from domaingate.models import Domain
from domaingate.states import Status
from domaingate.store import events, in_lists
from domaingate.store.abc import Connection

# A move to write: the domain's id, the move, and when it is made.
MoveAt = tuple[int, Move, float]


class Planned(Protocol):
    """One domain's planned change: the domain as it was read, and its moves in order."""

    @property
    def domain(self) -> Domain: ...

    @property
    def moves(self) -> tuple[Move, ...]: ...


P = TypeVar("P", bound=Planned)


def _move_statement(target: Status) -> str:
    sets = "status = ?, updated_at = ?"
    if target is Status.VERIFIED:
        sets += ", verified_at = ?"
    elif target is Status.REMOVED:
        sets += ", removed_at = ?, next_check_at = NULL"
    # The compare-and-set: only from the status the move starts from.
    return f"UPDATE domains SET {sets} WHERE id = ? AND status = ?"


def _move_params(domain_id: int, move: Move, now: float) -> tuple[Any, ...]:
    when = (now,) if move.target in (Status.VERIFIED, Status.REMOVED) else ()
    return (move.target.value, now, *when, domain_id, move.source.value)


def _move_event(domain_id: int, move: Move, now: float) -> events.NewEvent:
    return events.NewEvent(
        domain_id=domain_id,
        source=move.source,
        target=move.target,
        reason=move.reason,
        message=move.message,
        now=now,
    )


async def transition(
    conn: Connection,
    domain: Domain,
    target: Status,
    *,
    reason: str | None,
    message: str | None,
    now: float,
) -> bool:
    """Move `domain` to `target` if it is still in the status it was read with.

    Returns False (and changes nothing) when another writer moved it first.
    """
    move = Move(source=domain.status, target=target, reason=reason, message=message)
    cursor = await conn.execute(_move_statement(target), _move_params(domain.id, move, now))
    if cursor.rowcount != 1:
        return False
    await events.record_many(conn, [_move_event(domain.id, move, now)])
    return True


async def move_many(conn: Connection, moves: Sequence[MoveAt]) -> None:
    """Make moves whose domains the caller has seen, in this transaction, in each move's source
    status (a domain's second move starts where its first ends).

    No compare-and-set result per row (executemany has none): the caller's read inside the
    same write transaction is what guarantees each update matches.
    """
    # Runs of the same statement go in one executemany, in order: a domain's second move must
    # follow its first.
    run: list[tuple[Any, ...]] = []
    statement = ""
    for domain_id, move, now in moves:
        if _move_statement(move.target) != statement and run:
            await conn.executemany(statement, run)
            run = []
        statement = _move_statement(move.target)
        run.append(_move_params(domain_id, move, now))
    if run:
        await conn.executemany(statement, run)
    await events.record_many(conn, [_move_event(*move) for move in moves])


async def unchanged(conn: Connection, domains: Sequence[Domain]) -> list[bool]:
    """For each domain (as it was read earlier), whether it still has that status: the
    compare-and-set of a batched write, read inside its write transaction. A domain that appears
    twice counts once, at its first place."""
    current = await _statuses(conn, (domain.id for domain in domains))
    seen: set[int] = set()
    result = []
    for domain in domains:
        result.append(current.get(domain.id) == domain.status.value and domain.id not in seen)
        seen.add(domain.id)
    return result


async def _statuses(conn: Connection, ids: Iterable[int]) -> dict[int, str]:
    """id → status of the given domains, read on `conn` (inside its transaction)."""
    found: dict[int, str] = {}
    for chunk in in_lists.chunks(ids):
        async with conn.execute(
            f"SELECT id, status FROM domains WHERE id IN ({in_lists.marks(chunk)})", chunk
        ) as cursor:
            found.update({int(row[0]): str(row[1]) async for row in cursor})
    return found


async def write_batch(
    conn: Connection,
    planned: Sequence[P],
    *,
    now: Callable[[P], float],
    write: Callable[[Connection, list[P]], Awaitable[object]],
    settle: Callable[[Connection, Sequence[P], list[bool]], Awaitable[Sequence[P]]] | None = None,
) -> tuple[list[bool], list[P]]:
    """Write the changes of `planned` whose domains still have the status they were read with:
    `settle` may first replace plans (the claim rules), `write` writes the chosen changes'
    own fields, then their moves are made. Returns, for each, whether it was written, and the
    changes written (as settled)."""
    written = await unchanged(conn, [p.domain for p in planned])
    if settle is not None:
        planned = await settle(conn, planned, written)
    chosen = [p for p, ok in zip(planned, written, strict=True) if ok]
    await write(conn, chosen)
    await move_many(conn, [(p.domain.id, move, now(p)) for p in chosen for move in p.moves])
    return written, chosen
