"""``energy-bench run --ray``: what each shard runs, and what the driver refuses before starting (no Ray needed)."""

from __future__ import annotations

import json

import pytest

from energy_bench.cli import main
from energy_bench.distributed.ray_driver import (
    DriverError,
    Plan,
    ShardResult,
    check_args,
    exit_code,
    node_wide_problem,
    saved_meter,
    shard_command,
    shard_environment,
    shared_nodes,
)
from tests.fakes.powercap import FakePowercap


def plan(*args: str, shards: int = 2, gpus: int = 0, cpus: int = 1, address: str | None = None) -> Plan:
    return Plan(shards, gpus, cpus, tuple(args), address)


def test_each_shard_runs_pytest_with_its_shard_its_json_and_its_gpus():
    command = shard_command(plan("benchmarks/", "-q", shards=4, gpus=2), 3, "/tmp/x.json")
    assert command[1:3] == ["-m", "pytest"]
    assert command[3:] == [
        "benchmarks/",
        "-q",
        "--energy-shard=3/4",
        "--benchmark-json=/tmp/x.json",
        "--energy-gpus=0,1",  # CUDA indices under the CUDA_VISIBLE_DEVICES Ray sets
    ]
    assert shard_environment(plan(gpus=2, cpus=3)) == {"OMP_NUM_THREADS": "3"}
    assert shard_environment(plan(gpus=0)) == {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.parametrize(
    "args",
    [("--energy-shard=1/2",), ("--benchmark-json", "x.json"), ("--benchmark-autosave",), ("--benchmark-save=x",)],
)
def test_options_the_driver_sets_are_refused(args):
    with pytest.raises(DriverError, match="the driver sets them"):
        check_args(plan(*args))


def test_gpus_are_the_drivers_to_pick():
    with pytest.raises(DriverError, match="--energy-gpus"):
        check_args(plan("--energy-gpus=0", gpus=1))


def test_rapl_on_a_local_ray_with_two_shards_is_refused():
    assert "whole node" in node_wide_problem(plan("--energy-meter=rapl"), lambda root: False)
    assert "whole node" in node_wide_problem(plan("--energy-meter", "rapl"), lambda root: False)
    assert node_wide_problem(plan("--energy-meter=rapl", shards=1), lambda root: False) is None


def test_auto_is_refused_locally_only_where_it_would_read_rapl():
    asked = []

    def readable(root):
        asked.append(root)
        return root == "/here"

    assert node_wide_problem(plan("--energy-powercap-root=/here"), readable) is not None
    assert node_wide_problem(plan("--energy-powercap-root=/elsewhere"), readable) is None
    assert asked == ["/here", "/elsewhere"]
    assert node_wide_problem(plan("--energy-meter=estimate"), readable) is None
    assert node_wide_problem(plan("--energy-meter=nvml", gpus=1), readable) is None
    # on a cluster, whether shards share a node is known from its nodes only
    assert node_wide_problem(plan("--energy-meter=rapl", address="auto"), readable) is None


def test_nvml_without_gpus_is_refused():
    assert "no GPU" in node_wide_problem(plan("--energy-meter=nvml", gpus=0), lambda root: False)


def test_nodes_with_room_for_two_shards():
    nodes = [
        {"Alive": True, "NodeManagerAddress": "10.0.0.1", "Resources": {"CPU": 16.0, "GPU": 8.0}},
        {"Alive": True, "NodeManagerAddress": "10.0.0.2", "Resources": {"CPU": 16.0, "GPU": 1.0}},
        {"Alive": False, "NodeManagerAddress": "10.0.0.3", "Resources": {"CPU": 64.0, "GPU": 8.0}},
    ]
    assert shared_nodes(nodes, plan(gpus=4, cpus=4)) == ["10.0.0.1"]
    assert shared_nodes(nodes, plan(gpus=8, cpus=4)) == []
    assert shared_nodes(nodes, plan(gpus=0, cpus=8)) == ["10.0.0.1", "10.0.0.2"]


def test_exit_code_is_the_first_failing_shards():
    results = [ShardResult("1/3", 0, "{}"), ShardResult("2/3", 5, None), ShardResult("3/3", 1, "{}")]
    assert exit_code(results) == 1
    assert exit_code(results[:2]) == 0


def test_the_command_refuses_before_starting_ray(tmp_path, capsys):
    root = tmp_path / "powercap"
    FakePowercap(root)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--ray", "--shards", "2", "--", "tests/", "--energy-meter=rapl", f"--energy-powercap-root={root}"])
    assert exit_info.value.code == 2
    assert "refusing to start: --energy-meter=rapl reads RAPL" in capsys.readouterr().err


def test_the_command_needs_ray_and_shards(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--shards", "2", "--", "tests/"])
    assert "--ray" in capsys.readouterr().err


def test_the_meter_a_shard_saved_with():
    assert saved_meter(json.dumps({"machine_info": {"energy": {"meter": "nvml-counter"}}})) == "nvml-counter"
    assert saved_meter(json.dumps({"machine_info": {}})) is None
    assert saved_meter(None) is None and saved_meter("{") is None
