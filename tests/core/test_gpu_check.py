"""scripts/gpu-check's logic without a GPU: counter against polling on the fake NVML, the agreement math, the
report files, the skip paths and the gate phase's commands (a fake runner stands in for the pytest sessions)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from energy_bench.study import gpu_check
from energy_bench.study.gpu_check import Environment, Phase
from tests.fakes.fake_pynvml import FakeClock, FakeGpu, FakeNvml, RampTrace

READY = Environment(None, None, None, {"host": "box"})
NO_GPU = Environment(None, "torch sees no CUDA device", "NVML unavailable: no driver", {"host": "box"})


@pytest.fixture(autouse=True)
def cuda_environment(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


@pytest.fixture
def fake_nvml(monkeypatch):
    """A fake NVML on a hand-moved clock, one GPU on a ramp (the trapezoid rule is exact on it)."""

    def put(gpu: FakeGpu | None = None) -> tuple[FakeNvml, FakeClock]:
        clock = FakeClock()
        fake = FakeNvml([gpu or FakeGpu(trace=RampTrace(100.0, 40.0))], clock=clock)
        monkeypatch.setitem(sys.modules, "pynvml", fake.module)
        return fake, clock

    return put


def test_difference_and_agreement_are_in_percent_of_the_counter():
    assert gpu_check.difference_pct(100.0, 103.0) == pytest.approx(3.0)
    assert gpu_check.difference_pct(100.0, 97.0) == pytest.approx(-3.0)
    assert gpu_check.agreement_pct(100.0, 97.0) == pytest.approx(97.0)
    assert gpu_check.agreement_pct(50.0, 50.0) == 100.0
    for no_energy in (0.0, -1.0, math.nan):
        assert gpu_check.difference_pct(no_energy, 5.0) is None and gpu_check.agreement_pct(no_energy, 5.0) is None


def test_counter_and_polling_over_the_same_windows_agree_on_a_ramp(fake_nvml):
    fake, clock = fake_nvml()
    loads = [("idle", lambda: clock.advance(5.0)), ("busy", lambda: clock.advance(2.0))]  # 5 s idle, 2 s busy
    first, idle = gpu_check.run_counter_vs_polling(READY, loads, clock)
    assert first.status == idle.status == "ok"
    assert [(r["window"], r["domain"]) for r in first.results] == [("idle", "gpu0"), ("busy", "gpu0")]
    for row, (start, end) in zip(first.results, [(0.0, 5.0), (5.0, 7.0)]):
        exact = fake.exact_joules(0, fake.t0 + start, fake.t0 + end)
        assert row["seconds"] == pytest.approx(end - start)
        assert row["counter_j"] == pytest.approx(exact, abs=0.002)  # the counter counts whole mJ
        assert row["polled_j"] == pytest.approx(exact, rel=1e-9)
        assert abs(row["difference_pct"]) < 0.01 and row["agreement_pct"] > 99.99
    (watts,) = idle.results
    assert watts["domain"] == "gpu0" and watts["counter_w"] == pytest.approx(first.results[0]["counter_j"] / 5.0)
    assert watts["polled_w"] == pytest.approx(fake.exact_joules(0, fake.t0, fake.t0 + 5.0) / 5.0)


def test_compare_paths_reports_what_the_two_meters_read():
    class Fixed:
        def __init__(self, joules):
            self.joules = joules

        def begin(self):
            return None

        def end(self, mark):
            from energy_bench.meters import Reading, Source

            return Reading({"gpu0": self.joules}, 2.0, Source.MEASURED, "fixed")

    (row,) = gpu_check.compare_paths(Fixed(200.0), Fixed(190.0), [("w", lambda: None)])
    assert row["difference_pct"] == pytest.approx(-5.0) and row["agreement_pct"] == pytest.approx(95.0)
    assert row["counter_w"] == 100.0 and row["polled_w"] == 95.0


def test_a_gpu_without_the_counter_skips_the_comparison_with_the_reason(fake_nvml):
    fake_nvml(FakeGpu(counter=False))
    first, idle = gpu_check.run_counter_vs_polling(READY, [("idle", lambda: None)])
    assert first.status == idle.status == "skipped"
    assert "no NVML energy counter" in first.reason and "Not Supported" in first.reason


def test_detect_finds_the_fake_nvml_and_says_when_torch_is_missing(fake_nvml, monkeypatch):
    fake_nvml()
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    env = gpu_check.detect()
    assert env.nvml_problem is None and env.facts["nvml"]["gpus"][0]["name"] == "NVIDIA Fake A100"
    assert "torch is not installed" in env.torch_problem and env.cuda_problem == env.torch_problem


def test_detect_says_why_nvml_is_unusable(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(library_found=False).module)
    assert "libnvidia-ml.so.1 is missing" in gpu_check._nvml({})


def test_without_a_gpu_every_phase_is_skipped_and_the_report_says_why(tmp_path, capsys):
    out = tmp_path / "report"
    assert gpu_check.main(["--out", str(out)], env=NO_GPU) == 0
    data = json.loads((out / "gpu-check.json").read_text())
    assert data["all_gpu_phases_skipped"] is True
    phases = {p["name"]: p for p in data["phases"]}
    assert list(phases) == ["counter-vs-polling", "idle-power", "study", "gate"]
    assert phases["idle-power"]["reason"] == "NVML unavailable: no driver"
    assert phases["study"]["reason"] == phases["gate"]["reason"] == "torch sees no CUDA device"
    markdown = (out / "gpu-check.md").read_text()
    assert "**Every GPU phase was skipped**" in markdown
    assert "Status: **skipped**" in markdown and "NVML unavailable: no driver" in markdown
    assert not list(out.glob("gate-*"))  # the gate's working folder is removed
    assert "wrote" in capsys.readouterr().out


def test_markdown_tables_and_json_of_finished_phases(tmp_path):
    row = {"variant": "stego fp16", "joules": 12.3456789, "accuracy": None, "details": {"bits": 12}, "note": "a|b"}
    phase = Phase("study", "Study", results=[row], notes=["one", "two\nlines"])
    data = gpu_check.report_data(READY, [phase, gpu_check.skipped("gate", "Gate", "no reason")], "2026-01-01")
    json_path, md_path = gpu_check.write_report(data, tmp_path)
    assert json.loads(json_path.read_text())["phases"][0]["results"][0]["details"] == {"bits": 12}
    markdown = md_path.read_text()
    assert "| variant | joules | accuracy | note |" in markdown  # nested values stay in the JSON only
    assert "| stego fp16 | 12.35 | - | a\\|b |" in markdown
    assert "- one" in markdown and "```\ntwo\nlines\n```" in markdown
    assert "Every GPU phase was skipped" not in markdown and "Status: **skipped** (0.0 s): no reason" in markdown


def test_a_phase_that_raises_fails_alone(tmp_path):
    def broken():
        raise RuntimeError("CUDA out of memory")

    (phase,) = gpu_check.guarded("study", "Study", broken)
    assert phase.status == "failed" and phase.reason == "RuntimeError: CUDA out of memory"


class Runner:
    """Stands in for subprocess.run: the exit codes to give, in order, and the commands it was given."""

    def __init__(self, *codes):
        self.codes, self.commands = list(codes), []

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        return subprocess.CompletedProcess(command, self.codes.pop(0), "out\n", "")


def test_gate_runs_two_saving_sessions_then_compare_with_fail(tmp_path):
    runner = Runner(0, 0, 0)
    phase = gpu_check.run_gate(READY, tmp_path, runner)
    assert phase.status == "ok" and phase.results[-1]["exit"].startswith("passed")
    first, second, compare = runner.commands
    assert first == second and "--benchmark-autosave" in first and "--energy-meter=nvml" in first
    assert compare[1:4] == ["-m", "energy_bench.cli", "compare"] and gpu_check.GATE_FAIL in compare
    assert (tmp_path / "test_tiny_gpu.py").exists()


def test_gate_tells_a_false_alarm_from_a_broken_session(tmp_path):
    assert "false alarm" in gpu_check.run_gate(READY, tmp_path, Runner(0, 0, 1)).results[-1]["exit"]
    broken = gpu_check.run_gate(READY, tmp_path, Runner(0, 4))
    assert broken.status == "failed" and broken.reason == "session 2 exited 4"


@pytest.mark.parametrize("args", [["--model", "resnet9000"], ["--out", "FILE"]])
def test_bad_arguments_exit_2_with_a_message(tmp_path, capsys, args):
    (tmp_path / "FILE").write_text("")
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(args, env=NO_GPU)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "valid models: densenet121, resnet18" in err or "is not a folder" in err


def test_the_script_runs_here(tmp_path):
    checkout = gpu_check.Path(gpu_check.__file__).resolve().parents[2]
    command = [sys.executable, "scripts/gpu-check", "--out", str(tmp_path)]
    hidden = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # every phase skipped, even where a GPU is
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=checkout, env=hidden)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "gpu-check.json").read_text())["all_gpu_phases_skipped"] is True
    assert "Every GPU phase was skipped" in (tmp_path / "gpu-check.md").read_text()
