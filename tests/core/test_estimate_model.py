"""What a run's estimated joules were computed with: recorded, compared, and recomputed with another model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from energy_bench.cli import main
from energy_bench.meters import EstimateMeter, detect_model
from energy_bench.meters.base import Reading, Source
from energy_bench.meters.estimate import LEGACY_CPU_WATTS, LEGACY_CPU_WATTS_BASIS
from energy_bench.runs import record as records
from energy_bench.runs.compare import compatibility_problems
from energy_bench.runs.estimate_model import (
    EstimateModelError,
    add_estimate,
    model_line,
    recorded_model,
    rescale_run,
)
from energy_bench.runs.footprint import Footprint, add_footprint
from energy_bench.runs.parse import run_from_json

CPUINFO = Path(__file__).parent / "cpuinfo"
MILAN = detect_model((CPUINFO / "amd-epyc-7763-milan.txt").read_text())
CASCADE = detect_model((CPUINFO / "intel-xeon-platinum-8259cl-cascade-lake.txt").read_text())
#: machine_info.energy of a run saved before per-CPU coefficients
LEGACY = {
    "meter": "estimate",
    "source": "estimated",
    "cpu_watts": LEGACY_CPU_WATTS,
    "cpu_watts_basis": LEGACY_CPU_WATTS_BASIS,
}


def machine_energy(model) -> dict:
    return EstimateMeter(model=model, cpu_seconds=lambda: 0.0).info()


def estimated_run(cpu_seconds: list[float], model, machine: dict | None = None, target: bool = False) -> dict:
    """A saved run as the plugin writes it: rounds of ``cpu_seconds`` each, at ``model.watts``."""
    reads = [Reading({"cpu": s * model.watts}, s, Source.ESTIMATED, "estimate") for s in cpu_seconds]
    record = records.energy_record(reads, {"cpu": 0.5 * model.watts}, iterations=2)
    if target:
        record["to_target"] = records.target_record(reads, True, 5, {"metric": "accuracy", "target": 0.9})
    add_footprint(record, Footprint(300.0, "test grid"))
    add_estimate(record, model)
    machine = machine or machine_energy(model)
    bench = {"name": "test_a", "fullname": "t.py::test_a", "stats": {"mean": 1.0}, "extra_info": {"energy": record}}
    return {"machine_info": {"energy": machine | Footprint(300.0, "test grid").describe()}, "benchmarks": [bench]}


def test_the_run_records_its_model_and_each_record_its_cpu_seconds() -> None:
    data = estimated_run([1.0, 1.2], MILAN)
    model = recorded_model(data["machine_info"]["energy"])
    assert (model.watts, model.lower_watts, model.label) == (2.02, pytest.approx(1.57), MILAN.label())
    estimate = data["benchmarks"][0]["extra_info"]["energy"]["estimate"]
    assert estimate["cpu_seconds_per_call"] == pytest.approx(1.1 / 2)
    assert estimate["lower_joules_per_call"] == pytest.approx(1.1 / 2 * 1.57)


def test_old_runs_say_what_they_were_computed_with() -> None:
    assert recorded_model(LEGACY).label == "CPU time x 10 W per busy core (the flat default of older energy-bench)"
    user = LEGACY | {"cpu_watts": 7.0, "cpu_watts_basis": "user setting"}
    assert recorded_model(user).label == "CPU time x 7 W per busy core (user setting)"
    assert recorded_model({"meter": "rapl"}) is None and model_line({"meter": "rapl"}) is None
    assert recorded_model({"meter": "nvml+estimate", "parts": [{"meter": "nvml"}, LEGACY]}).watts == 10.0
    old = run_from_json(estimated_run([1.0], MILAN, LEGACY), "old")  # an old file still loads
    assert old.benchmarks["t.py::test_a"].joules is not None


def test_runs_of_different_models_are_not_compared_silently() -> None:
    base = run_from_json(estimated_run([1.0, 1.1], MILAN, LEGACY), "base")
    cur = run_from_json(estimated_run([1.0, 1.1], MILAN), "cur")
    problems = compatibility_problems(base.benchmarks, cur.benchmarks, base.machine_energy, cur.machine_energy)
    assert len(problems) == 1 and problems[0].startswith("different estimate models: baseline CPU time x 10 W")
    assert "--estimate-model" in problems[0]
    same = run_from_json(estimated_run([2.0], MILAN), "same")
    assert not compatibility_problems(same.benchmarks, cur.benchmarks, same.machine_energy, cur.machine_energy)
    other = run_from_json(estimated_run([1.0], CASCADE), "other")
    assert compatibility_problems({}, {}, other.machine_energy, cur.machine_energy)  # merging shards: whole runs


def test_rescale_scales_every_joules_figure_by_the_watts_ratio() -> None:
    data = estimated_run([1.0, 1.5], MILAN, LEGACY, target=True)
    old = data["benchmarks"][0]["extra_info"]["energy"]
    new = rescale_run(data, CASCADE)
    record = new["benchmarks"][0]["extra_info"]["energy"]
    ratio = CASCADE.watts / LEGACY_CPU_WATTS
    for key in ("joules", "joules_per_call", "net_joules"):
        assert record[key]["data"] == pytest.approx([v * ratio for v in old[key]["data"]])
        assert record[key]["mean"] == pytest.approx(old[key]["mean"] * ratio)
    assert record["mean_watts"] == pytest.approx(old["mean_watts"] * ratio)
    assert record["domains"]["cpu"] == pytest.approx(old["domains"]["cpu"] * ratio)
    assert record["to_target"]["joules"] == pytest.approx(old["to_target"]["joules"] * ratio)
    assert record["carbon"]["grams_per_call"] == pytest.approx(old["carbon"]["grams_per_call"] * ratio)
    assert record["estimate"]["watts_per_cpu_second"] == CASCADE.watts
    machine = recorded_model(new["machine_info"]["energy"])
    assert machine.watts == CASCADE.watts and machine.label.endswith("recomputed from " + recorded_model(LEGACY).label)
    assert old["joules"]["data"] != record["joules"]["data"]  # the input is left as it was


def test_rescale_needs_estimated_energy() -> None:
    with pytest.raises(EstimateModelError, match="no estimated energy"):
        rescale_run({"machine_info": {"energy": {"meter": "rapl"}}, "benchmarks": []}, MILAN)


@pytest.fixture
def saved(tmp_path) -> Path:
    path = tmp_path / "0001_old.json"
    path.write_text(json.dumps(estimated_run([1.0, 1.2], MILAN, LEGACY) | {"datetime": "2026-01-01T00:00:00"}))
    return path


def test_report_names_the_model_and_recomputes_the_run(saved, tmp_path, capsys) -> None:
    assert main(["report", str(saved)]) == 0
    assert "Estimated energy: CPU time x 10 W per busy core (the flat default" in capsys.readouterr().out
    out = tmp_path / "new.json"
    assert main(["report", str(saved), "--estimate-model", "milan", "--save-json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Estimated energy: CPU time x 2.02 W per vCPU (AMD EPYC Milan (Zen 3) as chosen" in text
    assert "recomputed from CPU time x 10 W per busy core" in text
    new, old = json.loads(out.read_text()), json.loads(saved.read_text())
    ratio = (
        new["benchmarks"][0]["extra_info"]["energy"]["joules"]["mean"]
        / old["benchmarks"][0]["extra_info"]["energy"]["joules"]["mean"]
    )
    assert ratio == pytest.approx(2.02 / 10)
    # the recomputed file and a run made with that model now compare without a complaint
    assert main(["compare", str(out), str(out)]) == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--estimate-model", "sparc"], "--estimate-model: no architectures match 'sparc'"),
        (["--save-json", "x.json"], "--save-json needs --estimate-model"),
    ],
)
def test_report_usage_errors(saved, capsys, args, message) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(saved), *args])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
