"""The search of ``energy-bench bisect``: the first bad commit of an ordered list, by halving.

Plain data in, data out: checking out, measuring and printing live in :mod:`energy_bench.cli.bisect`.

``commits`` are the commits after GOOD up to BAD, oldest first (BAD last); GOOD itself is good by definition.
``verdict(commit)`` says ``"good"``, ``"bad"`` or ``"skip"`` (the commit cannot be measured, as ``git bisect
skip``). The history is assumed monotone: every commit before the first bad one is good, every one from it on bad.

BAD is judged first (a BAD that passes the gate means there is nothing to find), then the midpoint of what is left
between the last known good commit and the first known bad one. With no skips that takes at most
``ceil(log2 N) + 1`` verdicts for N commits. A skipped commit is stepped over: the next candidate is the
untested commit nearest the midpoint; when only skipped commits are left between the two, the first bad commit is
one of them or the known bad one after them, and the result gives that range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

C = TypeVar("C")

VERDICTS = ("good", "bad", "skip")


@dataclass(frozen=True)
class Step(Generic[C]):
    """One verdict: the commit's position in ``commits``, the commit, and what it said."""

    index: int
    commit: C
    verdict: str


@dataclass
class BisectResult(Generic[C]):
    """What the search found.

    ``first`` .. ``last`` (inclusive positions in ``commits``) is where the first bad commit lies: one commit (the
    culprit) when it was isolated, several when skips hide it, none (``first > last``) when BAD passed.
    ``bad_known``: the range ends at a commit judged bad (False: BAD itself was skipped, so the range may hold no bad
    commit at all).
    """

    commits: Sequence[C]
    steps: list[Step[C]] = field(default_factory=list)
    first: int = 0
    last: int = -1
    bad_known: bool = False

    @property
    def culprit(self) -> C | None:
        """The first bad commit, when isolated."""
        return self.commits[self.first] if self.first == self.last and self.bad_known else None

    @property
    def range(self) -> list[C]:
        """The commits the first bad one is among (the culprit alone when isolated; empty when BAD passed)."""
        return list(self.commits[self.first : self.last + 1])

    @property
    def no_regression(self) -> bool:
        """BAD passed the gate: no commit in the list is bad."""
        return self.first > self.last


def bisect(commits: Sequence[C], verdict: Callable[[C], str]) -> BisectResult[C]:
    """Find the first commit ``verdict`` calls bad; see the module's docstring."""
    n = len(commits)
    if n == 0:
        raise ValueError("no commits to bisect")
    result = BisectResult(commits)
    good = -1  # last position known good (-1: GOOD itself)
    bad = n  # first position known bad (n: none known yet)
    skipped: set[int] = set()

    def judge(index: int) -> str:
        said = verdict(commits[index])
        if said not in VERDICTS:
            raise ValueError(f"verdict({commits[index]!r}) said {said!r}, not one of {', '.join(VERDICTS)}")
        result.steps.append(Step(index, commits[index], said))
        return said

    while True:
        if bad == n and n - 1 not in skipped and good < n - 1:
            index = n - 1  # BAD first
        else:
            index = _candidate(good, min(bad, n), skipped)
            if index is None:
                break
        said = judge(index)
        if said == "good":
            good = index
        elif said == "bad":
            bad = index
        else:
            skipped.add(index)
    result.first = good + 1
    result.bad_known = bad < n
    result.last = bad if bad < n else n - 1
    return result


def _candidate(good: int, bad: int, skipped: set[int]) -> int | None:
    """The untested position strictly between ``good`` and ``bad`` nearest their midpoint (None: none left)."""
    middle = (good + bad) // 2
    for distance in range(bad - good):
        for index in (middle + distance, middle - distance) if distance else (middle,):
            if good < index < bad and index not in skipped:
                return index
    return None
