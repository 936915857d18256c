"""Verdicts across saved sessions (``energy-bench report last:N``): a variant saved energy only when the
sessions agree.

One session's verdict rests on its round-to-round spread alone, so a session that runs a few percent faster
throughout can make one. Like the gate's pooled baseline (:mod:`energy_bench.runs.compare`), this looks at how whole
sessions differ: per group and variant, the ratio to the reference (joules to target, or per call: what
:mod:`energy_bench.runs.ranking` ranks) is taken in each session, and a Student t interval over the sessions of the
log ratio decides: "saved" when the whole interval is below 1, "cost more" when it is above 1, else "no clear
difference". Ratios, not joules, are pooled, so a session that is faster throughout moves both sides alike.

Sessions from other machines, meters or estimate models are refused (:func:`pool_problems`): their ratios would
say as much about the hardware as about the variant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

from energy_bench.runs.compare import ALPHA, compatibility_problems
from energy_bench.runs.parse import SavedRun
from energy_bench.runs.ranking import COST, NOT_REACHED, SAME, SAVED, GroupRanking
from energy_bench.runs.store.keys import machine_fingerprint, machine_name

#: a variant that had a ratio in one session only: no spread between sessions, so no verdict
ONE_SESSION_ONLY = "one session only"
#: a variant with no ratio in any session (failed, not measured, a reference that failed), never one that missed
#: the target
NOT_COMPARABLE = "not comparable"
ONE_SESSION_NOTE = (
    "These verdicts rest on one session: its spread is round to round within the session, so a session that runs "
    "a few percent faster or slower throughout can make a verdict. Pool saved sessions for verdicts that hold "
    "between sessions: energy-bench report last:N (or several RUNs)."
)


@dataclass(frozen=True)
class PooledVariant:
    """One variant of one group over the sessions: its per-session ratios and the interval they give."""

    group: str
    metric: str
    variant: str
    ratios: tuple[float, ...]  # one per session that had a ratio, in session order
    sessions: int  # sessions whose group had this variant
    not_reached: int  # sessions where it did not reach the target
    ratio: float | None  # geometric mean of ``ratios``
    low: float | None
    high: float | None
    verdict: str
    estimated: bool = False

    @property
    def n(self) -> int:
        return len(self.ratios)


def pool_problems(sessions: Sequence[tuple[SavedRun, Mapping[str, Any]]]) -> list[str]:
    """Why these sessions cannot be pooled: other machines (CPU and host, as the stores key them), and what the
    gate refuses (measured against estimated, other meters, estimate models or devices). Each against the first."""
    first_run, first_data = sessions[0]
    first_machine = first_data.get("machine_info")
    problems = []
    for run, data in sessions[1:]:
        machine = data.get("machine_info")
        if machine_fingerprint(machine) != machine_fingerprint(first_machine):
            problems.append(
                f"different machines: {first_run.label} ran on {machine_name(first_machine)}, "
                f"{run.label} on {machine_name(machine)}"
            )
        found = compatibility_problems(
            first_run.benchmarks, run.benchmarks, first_run.machine_energy, run.machine_energy
        )
        problems += [f"{first_run.label} and {run.label}: {p}" for p in found]
    return list(dict.fromkeys(problems))


def interval(ratios: Sequence[float], alpha: float = ALPHA) -> tuple[float, float, float] | None:
    """Geometric mean and the two-sided ``1 - alpha`` t interval of ``ratios`` (on the log scale, where a ratio
    and its inverse are as far from 1); None with fewer than two ratios (no spread between sessions)."""
    if len(ratios) < 2:
        return None
    logs = [math.log(r) for r in ratios]
    n = len(logs)
    mean = sum(logs) / n
    stddev = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * stddev / math.sqrt(n)
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def _verdict(found: tuple[float, float, float] | None, n: int, not_reached: int) -> str:
    if found is not None:
        _, low, high = found
        return SAVED if high < 1 else COST if low > 1 else SAME
    if n == 1:
        return ONE_SESSION_ONLY
    return NOT_REACHED if not_reached else NOT_COMPARABLE


def pool_rankings(
    per_session: Sequence[Sequence[GroupRanking]], reference: str, alpha: float = ALPHA
) -> list[PooledVariant]:
    """Every (group, metric)'s variants other than the reference, pooled over the sessions' rankings (groups and
    variants in first-seen order)."""
    found: dict[tuple[str, str, str], list[Any]] = {}
    for rankings in per_session:
        for group in rankings:
            if group.reference is None:  # no reference variant in this session's group: nothing to pool there
                continue
            for ranked in group.ranked:
                if ranked.entry.variant != reference:
                    found.setdefault((group.group, group.metric, ranked.entry.variant), []).append(ranked)
    pooled = []
    for (group, metric, variant), results in found.items():
        # only saved / no clear difference / cost more carry a ratio (a usable reference in that session)
        ratios = tuple(r.ratio for r in results if r.ratio is not None and 0 < r.ratio < math.inf)
        missed = sum(r.verdict == NOT_REACHED for r in results)
        spread = interval(ratios, alpha)
        pooled.append(
            PooledVariant(
                group=group,
                metric=metric,
                variant=variant,
                ratios=ratios,
                sessions=len(results),
                not_reached=missed,
                ratio=spread[0] if spread else (ratios[0] if ratios else None),
                low=spread[1] if spread else None,
                high=spread[2] if spread else None,
                verdict=_verdict(spread, len(ratios), missed),
                estimated=any(r.entry.estimated for r in results),
            )
        )
    return pooled
