"""The findings at the head of bench/RESULTS.md: what this run's verdicts came to, and how to read
the tables that follow.

Nothing here describes one run by hand. The tally is counted from the verdicts the run's sections
gave, each computed from a figure measured in that run against its target; the notes are the
method, true of every run. What a profile showed and what was changed because of it belongs in
the commit that made the change (and CHANGELOG.md), not in text that every run rewrites.
"""

from __future__ import annotations

from pathlib import Path

MET = "meets"
MISSED = "**misses**"


class Verdicts:
    """Each target's verdict as a section writes it, kept by section for the tally."""

    def __init__(self) -> None:
        self._open: list[bool] = []
        self.sections: list[tuple[str, list[bool]]] = []

    def give(self, ok: bool) -> str:
        """The verdict's word in a table, counted for the section being built."""
        self._open.append(ok)
        return MET if ok else MISSED

    def close(self, title: str) -> None:
        """The verdicts given since the last section closed belong to `title`."""
        if self._open:
            self.sections.append((title, self._open))
            self._open = []


def tally(verdicts: Verdicts) -> str:
    given = [ok for _, oks in verdicts.sections for ok in oks]
    if not given:
        return "No section of this run checks a target."
    missed = [
        f"{title} ({oks.count(False)} of {len(oks)})"
        for title, oks in verdicts.sections
        if not all(oks)
    ]
    checked = f"This run checked {len(given)} target{'s' if len(given) > 1 else ''}"
    if not missed:
        return f"{checked} and met {'every one' if len(given) > 1 else 'it'}."
    return f"{checked} and missed {given.count(False)}, in: " + "; ".join(missed) + "."


def render(verdicts: Verdicts, work: Path) -> str:
    """The findings section: the tally of `verdicts`, then the method notes."""
    return f"""\
## Findings (read with the tables below)

{tally(verdicts)}

How to read the tables:

- Each verdict ({MET} / {MISSED}) compares a figure with the target written in its column or
  line. Where a target is relative, the figure is a ratio against a baseline measured in the same
  run, on the same machine and cores; absolute rates, latency tails and start-up times move with
  the machine's load (the load averages above say how busy it was), so read those with it.
- A ratio within a few hundredths of its bound is a tie: repeated runs on a small machine move
  by that much. Repeat the section (`--only`) before reading anything into it.
- Profiles are py-spy recordings (`--format raw`), summarised by `bench/profiling.py` as the
  functions where the samples are; the next run overwrites the raw files, which are in
  `{work}` (`*-profile.txt`).
"""
