"""Saved runs for the site's tests, written with the product's own record functions into pytest-benchmark's file
storage (``<root>/<machine>/NNNN_<commit>.json``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from energy_bench.meters.base import Reading, Source
from energy_bench.runs.record import energy_record, samples

CRAFTED = "t.py::test_x[<img src=x onerror=alert(1)>]"


def saved_run(
    benchmarks: Mapping[str, list[float] | None],
    *,
    commit: str,
    time: str,
    branch: str,
    source: str = "estimated",
    meter: str = "estimate",
    carbon: Mapping | None = None,
) -> dict:
    """A run: per benchmark the joules of each round (None: no energy record, time only)."""
    entries = []
    for name, joules in benchmarks.items():
        extra = {}
        if joules is not None:
            readings = [Reading({"cpu": j}, 0.01 * j, Source(source), meter) for j in joules]
            extra["energy"] = energy_record(readings)
        stats = samples([0.01, 0.011, 0.012])
        entries.append(
            {"name": name, "fullname": name, "group": None, "param": None, "extra_info": extra, "stats": stats}
        )
    return {
        "machine_info": {"node": "test", **({"energy": {"carbon": dict(carbon)}} if carbon else {})},
        "commit_info": {"id": commit, "time": time, "branch": branch, "dirty": False, "project": "p"},
        "benchmarks": entries,
        "datetime": time,
        "version": "5.3.1",
    }


def write_run(root: Path, machine: str, number: int, data: dict) -> Path:
    path = root / machine / f"{number:04d}_{data['commit_info']['id'][:8]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path
