"""The history store at scale: a year of nightly runs of a mid-size suite (2,000 runs x 50 benchmarks = 100,000
records) on SQLite and on a PostgreSQL server this script starts (Debian's, as in the tests).

For each engine it adds the runs one transaction each (``RunStore.add``, as every saved session does) and, at each
checkpoint (by default 500, 1,000 and 2,000 runs), times the gate's lookup (``last(5)`` of one machine on one branch,
what ``--energy-compare=history:last:5`` asks) and one benchmark's whole series (``runs(benchmark=...)``, what
``history show`` and ``publish`` read), each the median of 5 tries after one warm-up. Floors (issue 19): the lookup
and the series within 1 s. Both are index lookups (``eb_runs_machine_branch_order``, ``eb_records_benchmark``): the
lookup should stay flat as the store grows and the series grow with the runs it returns, not with the store.

    python benchmarks/store_scale.py --json docs/data/store-scale.json
    python benchmarks/store_scale.py --runs 50,100 --benchmarks 5 --engines sqlite     # a quick check

Not a test: it takes minutes and its figures depend on the machine (run it on an otherwise idle one).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.store.postgres, from a checkout

from energy_bench.meters.base import Reading, Source
from energy_bench.runs.record import energy_record, samples
from energy_bench.runs.store import open_store

MACHINES = ("ci-1", "ci-2")
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def run_data(i: int, benchmarks: int, rng: random.Random) -> dict:
    """Run ``i`` of the history: alternate machines, one commit a night, per-round records of 5 rounds."""
    entries = []
    for b in range(benchmarks):
        readings = [Reading({"cpu": (1 + 0.1 * b) * rng.gauss(1, 0.01)}, 0.02, Source.ESTIMATED, "estimate")] * 5
        name = f"benchmarks/test_suite.py::test_bench[{b:02d}]"
        stats = samples([r.seconds for r in readings])
        entries.append(
            {"name": name, "fullname": name, "stats": stats, "extra_info": {"energy": energy_record(readings)}}
        )
    when = (START + timedelta(hours=12 * i)).isoformat()
    machine = MACHINES[i % 2]
    return {
        "machine_info": {"node": machine, "system": "Linux", "machine": "x86_64", "cpu": {"brand_raw": "AMD EPYC"}},
        "commit_info": {"id": f"{i:040x}", "time": when, "branch": "main", "dirty": False, "project": "suite"},
        "benchmarks": entries,
        "datetime": when,
        "version": "5.2.3",
    }


def timed(call, tries: int = 5) -> float:
    call()  # warm-up: the first read also pays for opening files and the planner
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(url: str, checkpoints: list[int], benchmarks: int) -> list[dict]:
    rng = random.Random(19)
    store = open_store(url)
    rows, added = [], 0
    for checkpoint in checkpoints:
        datas = [run_data(i, benchmarks, rng) for i in range(added, checkpoint)]
        start = time.perf_counter()
        for data in datas:
            store.add(data)
        rate = len(datas) / (time.perf_counter() - start)
        added = checkpoint
        machine = store.machines()[0].fingerprint
        benchmark = f"benchmarks/test_suite.py::test_bench[{benchmarks // 2:02d}]"
        lookup = timed(lambda machine=machine: store.last(5, machine=machine, branch="main"))
        series = timed(lambda machine=machine, benchmark=benchmark: store.runs(machine=machine, benchmark=benchmark))
        points = len(store.runs(machine=machine, benchmark=benchmark))
        rows.append(
            {
                "runs": checkpoint,
                "records": checkpoint * benchmarks,
                "import_runs_per_s": rate,
                "last5_seconds": lookup,
                "series_seconds": series,
                "series_points": points,
            }
        )
        print(
            f"  {checkpoint:>5} runs: import {rate:.0f} runs/s, last:5 {lookup * 1000:.1f} ms, "
            f"series of {points} points {series * 1000:.1f} ms",
            flush=True,
        )
    store.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="500,1000,2000", help="checkpoints: runs in the store when timed")
    parser.add_argument("--benchmarks", type=int, default=50, help="benchmarks per run")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    checkpoints = sorted(int(n) for n in args.runs.split(","))
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    result = {"cpu": cpu, "python": platform.python_version(), "benchmarks": args.benchmarks, "engines": {}}
    for engine in args.engines.split(","):
        print(f"{engine}:", flush=True)
        if engine == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                result["engines"][engine] = measure(f"sqlite:///{folder}/history.sqlite", checkpoints, args.benchmarks)
        else:
            from tests.store import postgres

            server = postgres.start()
            try:
                url = server.create_database("eb_scale")
                result["engines"][engine] = measure(url, checkpoints, args.benchmarks)
                result["postgresql_bin"] = str(server.bin)
            finally:
                server.stop()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
