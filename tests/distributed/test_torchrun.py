"""energy under torchrun: two ranks on this CPU (gloo), each with a fake NVML GPU of known constant power.

One launch of ``torchrun --nproc-per-node=2`` runs a constant-power benchmark and the DDP training example. The fake
``pynvml`` (a shim module on PYTHONPATH that builds :class:`tests.fakes.fake_pynvml.FakeNvml`) exposes two GPUs of
100 W and 150 W and logs every energy-counter read of its process, so the test knows each rank's own readings; a
fake powercap tree stands in for RAPL.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.powercap import FakePowercap

pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
WATTS = (100.0, 150.0)

SHIM = """
import json, os, sys
sys.path.insert(0, os.environ["FAKE_NVML_REPO"])
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml, RampTrace

_fake = FakeNvml([FakeGpu(RampTrace(w, 0.0)) for w in {watts}])
_read = _fake.module.nvmlDeviceGetTotalEnergyConsumption
_log = os.path.join(os.environ["FAKE_NVML_LOG"], "reads-" + os.environ.get("RANK", "x") + ".jsonl")


def logged_read(handle):
    value = _read(handle)
    with open(_log, "a") as f:
        f.write(json.dumps({{"gpu": _fake.gpus.index(handle), "mj": value}}) + "\\n")
    return value


_fake.module.nvmlDeviceGetTotalEnergyConsumption = logged_read
sys.modules[__name__] = _fake.module
"""

CONSTANT_POWER = """
import time

def test_power(energy):
    energy(time.sleep, 0.02, rounds=3, warmup_rounds=0)
"""


def own_readings(log: Path) -> list[float]:
    """Joules of each window a rank read itself: its counter reads after the first (the meter's probe), in pairs."""
    reads = [json.loads(line)["mj"] for line in log.read_text().splitlines()][1:]
    return [(end - start) / 1000 for start, end in zip(reads[::2], reads[1::2])]


def rank_output(logs: Path, rank: int) -> str:
    return "".join(p.read_text() for p in logs.glob(f"*/attempt_0/{rank}/std*.log"))


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    root = tmp_path_factory.mktemp("torchrun")
    (root / "shim").mkdir()
    (root / "shim" / "pynvml.py").write_text(SHIM.format(watts=list(WATTS)))
    (root / "reads").mkdir()
    FakePowercap(root / "powercap")
    (root / "test_power.py").write_text(CONSTANT_POWER)
    shutil.copy(REPO / "benchmarks" / "test_ddp.py", root / "test_ddp.py")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root / "shim"), str(REPO), os.environ.get("PYTHONPATH", "")]),
        "FAKE_NVML_REPO": str(REPO),
        "FAKE_NVML_LOG": str(root / "reads"),
        "OMP_NUM_THREADS": "1",
    }
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--log-dir=logs", "--redirects=3"),
        *("-m", "pytest", "-p", "no:cacheprovider", "--energy-meter=auto"),
        *(f"--energy-powercap-root={root / 'powercap'}", "--energy-min-round-seconds=0.2"),
        *("--benchmark-json=out.json", "--benchmark-autosave", "--benchmark-storage=file://storage"),
    ]
    process = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=500)
    return root, process


def test_both_ranks_pass(launched):
    root, process = launched
    assert process.returncode == 0, process.stderr[-3000:] + rank_output(root / "logs", 0)[-3000:]


def test_total_is_the_sum_of_the_ranks_own_readings(launched):
    root, _ = launched
    benchmarks = json.loads((root / "out.json").read_text())["benchmarks"]
    recorded = [j for b in benchmarks for j in b["extra_info"]["energy"]["joules"]["data"]]
    own = [own_readings(root / "reads" / f"reads-{rank}.jsonl") for rank in (0, 1)]
    assert len(own[0]) == len(own[1]) == len(recorded) == 6  # every window read once by each rank
    for total, mine, theirs in zip(recorded, *own):
        assert total == pytest.approx(mine + theirs, rel=0.02)


def test_domains_are_named_per_node_and_gpu_and_match_the_gpus(launched):
    root, _ = launched
    power = next(b for b in json.loads((root / "out.json").read_text())["benchmarks"] if b["name"] == "test_power")
    record = power["extra_info"]["energy"]
    assert sorted(record["domains"]) == ["node0/dram-0", "node0/gpu0", "node0/gpu1", "node0/package-0"]
    assert record["meter"] == "nvml-counter+rapl" and record["source"] == "measured"
    # rank 0 measured the 100 W GPU, rank 1 the 150 W one, over windows of the same length
    assert record["domains"]["node0/gpu0"] / record["domains"]["node0/gpu1"] == pytest.approx(100 / 150, rel=0.05)
    assert record["mean_watts"] == pytest.approx(sum(WATTS), rel=0.1)
    assert list(record["temperatures_c"]) == ["node0/gpu0"]  # rank 0's own GPU, read between rounds


def test_rapl_is_read_once_per_node(launched):
    root, _ = launched
    energy = json.loads((root / "out.json").read_text())["machine_info"]["energy"]
    assert [(p["rank"], p["meter"]) for p in energy["parts"]] == [(0, "nvml-counter"), (0, "rapl"), (1, "nvml-counter")]
    ranks = energy["distributed"]["ranks"]
    assert ranks[1]["domains"] == {"gpu1": "node0/gpu1"}
    assert energy["distributed"]["world_size"] == 2


def test_only_rank_0_saves_and_prints(launched):
    root, _ = launched
    assert len(list((root / "storage").glob("*/*.json"))) == 1
    first, second = rank_output(root / "logs", 0), rank_output(root / "logs", 1)
    assert "Wrote benchmark data in: out.json" in first and "energy-bench: energy per call" in first
    assert "Wrote benchmark data" not in second and "energy-bench: energy per call" not in second
    assert "2 passed" in second


def test_ddp_example_records_the_trained_accuracy(launched):
    root, _ = launched
    ddp = next(b for b in json.loads((root / "out.json").read_text())["benchmarks"] if b["name"] == "test_ddp_train")
    assert ddp["extra_info"]["world_size"] == 2 and ddp["extra_info"]["accuracy"] > 0.5
    assert ddp["extra_info"]["energy"]["joules"]["rounds"] == 3
