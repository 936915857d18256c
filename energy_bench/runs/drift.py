"""Whether a pooled gate can tell a change of its threshold's size, given how fast each session ran.

Two signs that it cannot, each said in the gate's output:

* **speed drift**: the current session's reference loop (``machine_info.energy.speed``, timed by
  :mod:`energy_bench.meters.speed`) ran faster or slower than the baseline sessions' by half the joules threshold
  or more. Then an unchanged benchmark can read as a change near the threshold, and a change of the threshold's
  size can read as half of it or as one and a half times it;
* **between-run spread**: the baseline runs' means differ so much that the gate's between-run bound lies beyond
  the threshold, so a change of exactly the threshold's size could not fail.

Neither changes a verdict: they say when the verdict cannot be trusted, and ``energy-bench ab`` (both sides in one
job) is the remedy. No pytest, no torch.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from energy_bench.runs.text import printable

SPEED_KEY = "speed"
#: the fraction of the joules threshold a speed difference may reach before the gate says it
DRIFT_SHARE = 0.5
AB_REMEDY = "energy-bench ab measures both sides in one job, where drift cannot do this"


def session_seconds(machine_energy: Mapping[str, Any] | None) -> float | None:
    """The session's reference-loop seconds, or None for a run saved without one (older, or nothing measured)."""
    speed = (machine_energy or {}).get(SPEED_KEY)
    value = speed.get("seconds") if isinstance(speed, Mapping) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def speed_drift_note(
    baseline_machines: Sequence[Mapping[str, Any] | None],
    current_machine: Mapping[str, Any] | None,
    joules_percent: float | None,
) -> str | None:
    """A line when this session's speed differs from the baselines' (median) by half the threshold or more, or
    the baseline sessions' speeds spread that much among themselves."""
    if joules_percent is None:
        return None
    current = session_seconds(current_machine)
    baselines = [s for s in (session_seconds(m) for m in baseline_machines) if s is not None]
    if current is None or not baselines:
        return None
    reference = statistics.median(baselines)
    drift = (current / reference - 1.0) * 100.0
    spread = (max(baselines) - min(baselines)) / reference * 100.0
    limit = DRIFT_SHARE * joules_percent
    if abs(drift) < limit and spread < limit:
        return None
    way = "slower" if drift > 0 else "faster"
    of = f"of {len(baselines)} baseline session(s)" if len(baselines) > 1 else "of the baseline session"
    return printable(
        f"speed drift: this session's reference loop took {abs(drift):.1f} % {'longer' if drift > 0 else 'less'} "
        f"than the median {of} (they spread {spread:.1f} % among themselves): the machine ran {way}, so a joules "
        f"change of the threshold's size ({joules_percent:g} %) may be missed or invented; {AB_REMEDY}"
    )


def resolution_notes(comparisons: Iterable[Any]) -> list[str]:
    """Benchmarks whose pooled baseline runs spread too much for a change of the threshold's size to fail."""
    notes = []
    for comparison in comparisons:
        joules = comparison.metrics.get("joules") if comparison.current is not None else None
        if joules is None or joules.bound is None or joules.threshold is None or joules.threshold.unit != "%":
            continue
        if joules.baseline <= 0:
            continue
        needed = (joules.bound / joules.baseline - 1.0) * 100.0
        if needed > joules.threshold.amount:
            notes.append(
                printable(
                    f"{comparison.fullname}: the baseline runs' joules spread so much between runs that only a "
                    f"change above {needed:.1f} % can fail (threshold {joules.threshold.amount:g} %)"
                )
            )
    return notes


def joules_threshold_percent(thresholds: Iterable[Any]) -> float | None:
    """The relative joules threshold among the gate's thresholds, if any."""
    for threshold in thresholds:
        if threshold.metric == "joules" and threshold.unit == "%":
            return float(threshold.amount)
    return None
