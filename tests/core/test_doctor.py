"""energy-bench doctor: each meter's state on fake hardware, the meter auto picks and why, the advice, text and JSON."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import pytest

from energy_bench.cli import doctor, main
from energy_bench.meters import rapl as rapl_module
from energy_bench.meters import select as select_mod
from energy_bench.meters import zeus as zeus_module
from energy_bench.meters.base import MeterNotInstalled
from energy_bench.runs.thresholds import RECOMMENDED, recommendation_for
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml
from tests.fakes.powercap import FakePowercap

CPUINFO = Path(__file__).parent / "cpuinfo"


@pytest.fixture(autouse=True)
def bare_machine(monkeypatch, tmp_path):
    """No NVIDIA library, no plugged-in meter, no Zeus, no OpenMP variables, unless a test says otherwise."""
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(library_found=False).module)
    monkeypatch.setattr(select_mod, "meter_entry_points", lambda: [])
    monkeypatch.setattr(zeus_module, "load_zeus", _no_zeus)
    for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", *doctor.cpu_mod.OPENMP_VARIABLES):
        monkeypatch.delenv(name, raising=False)


def _no_zeus():
    raise MeterNotInstalled("zeus is not installed")


def collect(tmp_path: Path, cpu: str = "amd-epyc-vm-genoa.txt", **kwargs) -> dict:
    root = kwargs.pop("powercap_root", str(tmp_path / "no-powercap"))
    return doctor.collect(root, cpuinfo=str(CPUINFO / cpu), **kwargs)


def test_vm_without_counters_picks_the_estimate_and_says_why(tmp_path):
    report = collect(tmp_path)
    auto = report["auto"]
    assert auto["meter"] == "estimate" and auto["source"] == "estimated"
    why = " ".join(auto["why"])
    assert "NVML library not found" in why and "powercap root" in why
    assert auto["recommended"]["thresholds"] == recommendation_for("estimate").thresholds
    text = doctor.format_report(report)
    assert "--energy-meter=auto picks: estimate (estimated joules)" in text
    assert "  why: NVML library not found" in text
    assert f"--energy-compare-fail={recommendation_for('estimate').thresholds}" in text
    assert report["meters"]["nvml"]["status"] == "no-driver"
    assert report["meters"]["rapl"]["status"] == "absent"
    assert "modprobe" in report["meters"]["rapl"]["advice"]


def test_gpus_with_counters_are_picked_and_listed(tmp_path, monkeypatch):
    fake = FakeNvml([FakeGpu(name="NVIDIA Fake H100"), FakeGpu(name="NVIDIA Fake H100")])
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    report = collect(tmp_path)
    assert report["auto"]["meter"].startswith("nvml")
    nvml = report["meters"]["nvml"]
    assert nvml["status"] == "counter" and [g["cuda_index"] for g in nvml["gpus"]] == [0, 1]
    assert all(g["counter"] and g["power_limit_w"] == 300.0 for g in nvml["gpus"])
    text = doctor.format_report(report)
    assert "GPU 0 NVIDIA Fake H100: cuda:0; energy counter;" in text
    # no threshold measured for hardware counters: the rule of thumb instead of a figure
    assert report["auto"]["recommended"]["thresholds"] is None
    assert "2.5 * c" in report["auto"]["recommended"]["rule_of_thumb"]


def test_gpu_without_counter_is_polled(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu(counter=False)]).module)
    nvml = collect(tmp_path)["meters"]["nvml"]
    assert nvml["status"] == "polling" and nvml["gpus"][0]["counter_error"]
    assert "polling" in nvml["advice"] or "polled" in nvml["advice"]


def test_gpus_hidden_by_cuda_visible_devices(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu()]).module)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    report = collect(tmp_path)
    nvml = report["meters"]["nvml"]
    assert nvml["status"] == "hidden" and nvml["gpus"][0]["cuda_index"] is None
    assert "CUDA_VISIBLE_DEVICES=''" in nvml["advice"]
    assert "hidden from CUDA" in doctor.format_report(report)


def test_readable_rapl_lists_its_domains(tmp_path):
    FakePowercap(tmp_path / "powercap", packages=2)
    rapl = collect(tmp_path, powercap_root=str(tmp_path / "powercap"))["meters"]["rapl"]
    assert rapl["status"] == "readable" and rapl["advice"] is None
    assert {d["domain"] for d in rapl["domains"]} >= {"package-0", "package-1"}


def test_denied_rapl_gives_the_chmod_fix(tmp_path, monkeypatch):
    FakePowercap(tmp_path / "powercap")

    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(rapl_module, "_open_counter", denied)
    report = collect(tmp_path, powercap_root=str(tmp_path / "powercap"))
    rapl = report["meters"]["rapl"]
    assert rapl["status"] == "denied"
    assert rapl["advice"].startswith("sudo chmod o+r ") and "energy_uj" in rapl["advice"]
    assert report["auto"]["meter"] == "estimate"


def test_zeus_that_fails_to_import_is_broken_not_missing(tmp_path, monkeypatch):
    def broken():
        raise ImportError("libamd_smi.so: cannot open shared object file")

    monkeypatch.setattr(zeus_module, "load_zeus", broken)
    zeus = collect(tmp_path)["meters"]["zeus"]
    assert zeus["status"] == "broken" and "libamd_smi" in zeus["reason"]


@pytest.mark.parametrize(
    ("cpu", "bf16", "fp16"),
    [
        ("amd-epyc-vm-genoa.txt", ["avx512_bf16"], []),
        ("amd-epyc-vm-milan.txt", [], []),
        ("intel-xeon-platinum-8488c-sapphire-rapids.txt", ["avx512_bf16", "amx_bf16"], ["avx512_fp16"]),
    ],
)
def test_narrow_formats_from_cpu_flags(tmp_path, cpu, bf16, fp16):
    report = collect(tmp_path, cpu=cpu)
    assert report["cpu"]["native_formats"] == {"bfloat16": bf16, "float16": fp16}
    text = doctor.format_report(report)
    assert ("bfloat16: native" in text) == bool(bf16)
    assert ("trains in float32 on this CPU" in text) == (not bf16 and not fp16)


def test_openmp_settings_that_bias_the_estimate(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("OMP_NUM_THREADS", "512")
    advice = collect(tmp_path)["openmp"]["advice"]
    assert any("OMP_WAIT_POLICY=ACTIVE wins" in a for a in advice)
    assert any("OMP_NUM_THREADS=512 is more than" in a for a in advice)


def test_json_and_text_from_the_command_line(tmp_path, capsys):
    assert main(["doctor", "--json", "--powercap-root", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["auto"]["meter"] == "estimate"
    assert set(report) == {"auto", "meters", "cpu", "openmp", "torch"}
    assert main(["doctor", "--powercap-root", str(tmp_path), "--cpu-watts", "7"]) == 0
    assert "CPU time x 7 W per vCPU" in capsys.readouterr().out


def test_bad_watts_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["doctor", "--cpu-watts", "-3"])
    assert exit_info.value.code == 2
    assert "expected a positive number of watts" in capsys.readouterr().err


def test_reasons_split_outside_parentheses():
    assert doctor.split_reasons("a (x; y); b; c") == ["a (x; y)", "b", "c"]


def test_every_meter_has_one_recommendation_row():
    rows = [meter for row in RECOMMENDED for meter in row.meters]
    assert len(rows) == len(set(rows))
    assert recommendation_for("nvml-counter+rapl") is recommendation_for("nvml-counter")
