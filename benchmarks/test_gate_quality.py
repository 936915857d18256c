"""How good is the gate's decision? Detection and false-alarm rates on simulated runs.

Each trial is a baseline run and a current run of ``ROUNDS`` rounds with round-to-round noise of
``CV`` (coefficient of variation; lognormal and normal), the current run's mean shifted by an injected
regression. Every trial goes through :func:`energy_bench.runs.compare.judge_rounds`, the decision the
gate and ``energy-bench compare`` use, under ``joules:5%``. Run ``python benchmarks/test_gate_quality.py``
to print the table alone.
"""

from __future__ import annotations

import numpy as np
from tabulate import tabulate

from energy_bench.runs.compare import ALPHA, judge_rounds, parse_threshold

ROUNDS = 5
CV = 0.03
TRIALS = 10_000
LEVELS = (0.0, 0.02, 0.05, 0.10, 0.15, 0.20)
THRESHOLD = parse_threshold("joules:5%")
SEED = 20261129


#: a noisy meter or machine, where the significance test (not the threshold) keeps false alarms down
NOISY_CV = 0.10


def simulate_runs(rng: np.random.Generator, regression: float, noise: str, cv: float = CV):
    """``TRIALS`` pairs of (baseline, current) runs of ``ROUNDS`` rounds each, in joules around 1000."""
    shape = (TRIALS, ROUNDS)
    if noise == "lognormal":
        sigma = np.sqrt(np.log1p(cv**2))  # lognormal with this coefficient of variation
        base = 1000 * rng.lognormal(-(sigma**2) / 2, sigma, shape)
        cur = 1000 * (1 + regression) * rng.lognormal(-(sigma**2) / 2, sigma, shape)
    else:
        base = rng.normal(1000, 1000 * cv, shape)
        cur = rng.normal(1000 * (1 + regression), 1000 * (1 + regression) * cv, shape)
    return base, cur


def gate_quality(noise: str = "lognormal", cv: float = CV, seed: int = SEED) -> list[dict[str, float]]:
    """Per injected regression: how often the gate fails the run, and how often the threshold alone would."""
    rng = np.random.default_rng(seed)
    rows = []
    for level in LEVELS:
        base, cur = simulate_runs(rng, level, noise, cv)
        judged = judge_rounds(base, cur, THRESHOLD, ALPHA)
        rows.append(
            {
                "regression_pct": level * 100,
                "flagged_rate": float(judged.regression.mean()),
                "threshold_alone_rate": float((judged.worse_by > THRESHOLD.amount).mean()),
            }
        )
    return rows


def table(rows: list[dict[str, float]]) -> str:
    body = [
        [f"{r['regression_pct']:.0f}%", f"{r['flagged_rate'] * 100:.2f}%", f"{r['threshold_alone_rate'] * 100:.2f}%"]
        for r in rows
    ]
    return tabulate(
        body,
        headers=["injected regression", "gate fails the run", "threshold alone would"],
        tablefmt="github",
        disable_numparse=True,
    )


def test_gate_quality(benchmark):
    results = benchmark.pedantic(lambda: {n: gate_quality(n) for n in ("lognormal", "normal")}, rounds=1, iterations=1)
    for noise, rows in results.items():
        rate = {r["regression_pct"]: r["flagged_rate"] for r in rows}
        benchmark.extra_info[f"{noise}_false_alarm_rate"] = rate[0.0]
        benchmark.extra_info[f"{noise}_detection_rate_10pct"] = rate[10.0]
        benchmark.extra_info[f"{noise}_rates"] = rows
        print(
            f"\ngate quality: joules:5%, {ROUNDS} rounds per run, {CV:.0%} CV {noise} noise, {TRIALS} trials per level"
        )
        print(table(rows))
        assert rate[10.0] >= 0.95, f"{noise}: a 10% regression caught only {rate[10.0]:.1%} of the time"
        assert rate[0.0] <= 0.01, f"{noise}: unchanged runs raised a false alarm {rate[0.0]:.1%} of the time"
        flagged = [r["flagged_rate"] for r in rows]
        assert flagged == sorted(flagged), "detection must not drop as the regression grows"


def test_gate_quality_noisy_meter(benchmark):
    """At 10% CV the threshold alone would often fail unchanged runs; the test keeps that under alpha."""
    rows = benchmark.pedantic(gate_quality, args=("lognormal", NOISY_CV), rounds=1, iterations=1)
    rate = {r["regression_pct"]: r for r in rows}
    benchmark.extra_info["false_alarm_rate"] = rate[0.0]["flagged_rate"]
    benchmark.extra_info["threshold_alone_false_alarm_rate"] = rate[0.0]["threshold_alone_rate"]
    benchmark.extra_info["rates"] = rows
    print(f"\ngate quality: joules:5%, {ROUNDS} rounds per run, {NOISY_CV:.0%} CV lognormal noise")
    print(table(rows))
    assert rate[0.0]["threshold_alone_rate"] > 0.10
    sampling_error = 3 * np.sqrt(ALPHA * (1 - ALPHA) / TRIALS)
    assert rate[0.0]["flagged_rate"] <= ALPHA + sampling_error


if __name__ == "__main__":
    for noise, cv in (("lognormal", CV), ("normal", CV), ("lognormal", NOISY_CV)):
        print(
            f"\n{noise} noise, CV {cv:.0%}, {ROUNDS} rounds per run, {TRIALS} trials per level, "
            f"joules:5%, alpha {ALPHA}"
        )
        print(table(gate_quality(noise, cv)))
