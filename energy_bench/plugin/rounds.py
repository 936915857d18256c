"""How ``energy()`` runs a benchmark: calls per round sized to the meter, warm-up, measured rounds, a stop condition.

pytest-benchmark sizes a round so that the timer's resolution does not matter; an energy meter has a resolution too
(the NVML counter refreshes about every 100 ms), so a round here lasts at least the meter's minimum window
(:attr:`energy_bench.meters.Meter.min_round_s`, or ``--energy-min-round-seconds``): :func:`calibrate` times single
calls and picks how many calls make a round. Every measured round is one meter window around ``iterations`` calls;
pytest-benchmark's statistics are per call, as for its own ``benchmark`` fixture.

The loop uses pytest-benchmark's runner and statistics (``_make_runner``, ``_make_stats``), as ``pedantic`` does,
because ``pedantic`` cannot stop early (energy to a target) nor read a meter around a looped round.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_benchmark.fixture import PauseInstrumentation

from energy_bench.meters import Meter, MeterError, Reading, window

#: calibration stops growing the number of calls once a timed batch lasts this share of the minimum round
CALIBRATION_SHARE = 0.25
#: at most this many calls per round, however fast a call is
MAX_ITERATIONS = 1_000_000


@dataclass
class Target:
    """A stop condition that remembers the metric it watches: made by ``energy.target(fn, at_least=0.93)``.

    Called after each measured round, outside the meter's window and the timer: evaluates ``metric_fn()``, keeps the
    value for the record's curve, and says whether the target is met.
    """

    metric_fn: Callable[[], Any]
    threshold: float
    at_least: bool = True
    name: str = "accuracy"
    values: list[float] = field(default_factory=list)

    def __call__(self) -> bool:
        value = float(self.metric_fn())
        self.values.append(value)
        return value >= self.threshold if self.at_least else value <= self.threshold

    def describe(self) -> dict[str, Any]:
        return {"metric": self.name, "target": self.threshold, "direction": "at_least" if self.at_least else "at_most"}


def calibrate(runner: Callable[[range], float], min_round_s: float) -> int:
    """Calls per round so that a round lasts at least ``min_round_s``: time growing batches of calls, then scale.

    ``runner(range(n))`` runs ``n`` calls and returns their seconds. The calls made here are unmeasured (they warm up
    the code like pytest-benchmark's calibration does); the first one is not used for sizing, because a cold call
    (lazy initialization, caches) can take many times as long. Code whose one call outlasts the minimum round costs
    two calls here: pass ``iterations=1`` to skip them.
    """
    if min_round_s <= 0:
        return 1
    runner(range(1))
    calls = 1
    while True:
        seconds = runner(range(calls))
        if seconds >= min_round_s * CALIBRATION_SHARE or calls >= MAX_ITERATIONS:
            break
        # Grow towards the share in one or two steps, never more than 10x at once (a first call may be cold).
        wanted = calls * min_round_s * CALIBRATION_SHARE / seconds if seconds > 0 else calls * 10
        calls = min(MAX_ITERATIONS, max(calls * 2, min(calls * 10, math.ceil(wanted))))
    per_call = seconds / calls
    if per_call <= 0:
        return MAX_ITERATIONS
    return max(1, min(MAX_ITERATIONS, math.ceil(min_round_s / per_call)))


@dataclass
class RoundsResult:
    """What the loop measured: one reading per measured round (fewer if the meter failed), and how it ended."""

    result: Any
    iterations: int
    rounds_run: int
    readings: list[Reading]
    error: str | None = None
    reached: bool | None = None  # None: no stop condition


def run_rounds(
    benchmark: Any,
    meter: Meter,
    call: Callable[[], Any],
    *,
    rounds: int,
    warmup_rounds: int,
    iterations: int | None,
    min_round_s: float,
    until: Callable[[], Any] | None = None,
    before_round: Callable[[int], None] | None = None,
) -> RoundsResult:
    """Warm up, then up to ``rounds`` measured rounds of ``iterations`` calls, each inside one meter window.

    ``call()`` runs the benchmarked code once. A meter that fails stops the measuring (the rounds still run and are
    timed); ``until()``, checked after each measured round, stops the rounds once it returns true.
    ``before_round(i)`` runs before measured round ``i`` (from 0), outside the timer and the window: the GPU
    temperatures and cooldown of :class:`energy_bench.meters.cooldown.RoundTemperatures`.
    """
    last: dict[str, Any] = {}

    def timed_call() -> None:
        last["result"] = call()
        window.synchronize_devices()  # inside the timer, so GPU time is counted as time

    runner = benchmark._make_runner(timed_call, (), {})
    # Ranks of a torchrun job measure together (energy_bench.distributed): they size rounds on the slowest rank and
    # stop together, so collective code (DDP) makes the same calls on every rank. One process has nothing to agree on.
    agree = getattr(meter, "agreement", None)
    sizing = runner if agree is None else (lambda loops: agree.slowest(runner(loops)))
    with PauseInstrumentation():
        if iterations is None:
            iterations = calibrate(sizing, min_round_s)
        loops = range(iterations)
        for _ in range(warmup_rounds):
            runner(loops)
    stats = benchmark._make_stats(iterations)
    readings: list[Reading] = []
    error: str | None = None
    reached: bool | None = None if until is None else False
    rounds_run = 0
    for index in range(rounds):
        if before_round is not None:
            before_round(index)
        mark = None
        if error is None:
            try:
                mark = window.open_window(meter)  # outside the timer: the meter's cost does not count as time
            except MeterError as exc:
                error = str(exc)
        with PauseInstrumentation():
            stats.update(runner(loops))
        rounds_run += 1
        if mark is not None:
            try:
                readings.append(window.close_window(meter, mark))
            except MeterError as exc:
                error = str(exc)
        if until is not None and (until() if agree is None else agree.any(until())):
            reached = True
            break
    if benchmark.cprofile:
        profile_one_call(benchmark, timed_call)
    return RoundsResult(last.get("result"), iterations, rounds_run, readings, error, reached)


def profile_one_call(benchmark: Any, call: Callable[[], None]) -> None:
    """``--benchmark-cprofile``: one more call under cProfile, saved as pytest-benchmark saves its own."""
    import cProfile

    profile = cProfile.Profile()
    with PauseInstrumentation():
        profile.runcall(call)
    benchmark._save_cprofile(profile)
