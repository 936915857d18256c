"""The study split over two Ray shards gives the run one process gives: same benchmarks, same accuracies.

Opt-in (it trains models: minutes on a 2-core CPU) with ``ENERGY_BENCH_SHARD_CHECK=1``::

    ENERGY_BENCH_SHARD_CHECK=1 pytest benchmarks/test_shards.py -s

It runs a small study subset (two models x two compressors, smoke profile, CPU-time estimate) twice: once as one
pytest session, once as ``energy-bench run --ray --shards 2 --cpus-per-shard 1`` on a local Ray, whose two shards run
at the same time, one model each. torch's results can depend on its thread count, so both use one thread
(``OMP_NUM_THREADS=1``: the driver sets it from ``--cpus-per-shard``, the single session gets it here). Accuracies
must then be equal, not merely close. The shards' energy is the CPU-time estimate of each shard's own process tree,
so running them side by side does not mix their joules (RAPL would: the driver refuses it on a local Ray).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("ENERGY_BENCH_SHARD_CHECK") != "1",
    reason="opt-in (trains models for minutes): set ENERGY_BENCH_SHARD_CHECK=1",
)

REPO = Path(__file__).resolve().parents[1]
STUDY = (
    "benchmarks/test_compression.py",
    "--energy-models=resnet18,alexnet",
    "--energy-compressors=baseline,prune",
    "--energy-meter=estimate",
    "-p",
    "no:cacheprovider",
    "-q",
)
CLI = "import sys; from energy_bench.cli import main; sys.exit(main())"


def accuracies(path: Path) -> dict[str, float | None]:
    return {b["fullname"]: b["extra_info"].get("accuracy") for b in json.loads(path.read_text())["benchmarks"]}


def test_ray_shards_reproduce_one_session(tmp_path):
    try:
        import ray  # noqa: F401
    except Exception as exc:  # not installed, or its import broken (see energy_bench.distributed.ray_driver)
        pytest.skip(f"Ray cannot be imported: {exc!r}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [sys.executable, "-m", "pytest", *STUDY, f"--benchmark-json={tmp_path / 'single.json'}"], cwd=REPO, env=env
    )
    assert single.returncode == 0
    merged = tmp_path / "merged.json"
    command = [sys.executable, "-c", CLI, "run", "--ray", "--shards", "2", "--cpus-per-shard", "1", "-o", str(merged)]
    driver = subprocess.run([*command, "--", *STUDY], cwd=REPO, env=env)
    assert driver.returncode == 0

    one, sharded = accuracies(tmp_path / "single.json"), accuracies(merged)
    print(json.dumps({"single": one, "sharded": sharded}, indent=2))
    assert sorted(sharded) == sorted(one) and len(one) == 8
    assert sharded == one
    shards = json.loads(merged.read_text())["machine_info"]["energy"]["shards"]
    assert sorted(s["keys"] for s in shards) == [["alexnet"], ["resnet18"]]
