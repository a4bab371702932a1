"""A state move: the one type both planners produce and the store writes."""

from __future__ import annotations

from dataclasses import dataclass

from domaingate.states import Status, check_move


@dataclass(frozen=True, slots=True, kw_only=True)
class Move:
    """One move of a domain from `source` to `target`, with the reason and message its event
    carries. The store writes it only while the domain is still in `source`."""

    source: Status
    target: Status
    reason: str | None
    message: str | None

    def __post_init__(self) -> None:
        check_move(self.source, self.target)
