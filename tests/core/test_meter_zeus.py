"""The Zeus meter against a fake ``zeus`` package with Zeus 0.16's monitor API (and the real one where installed)."""

from __future__ import annotations

import sys

import pytest

from energy_bench.meters import GpuIndexError, MeterError, MeterNotInstalled, MeterUnavailable, Source
from energy_bench.meters.select import MeterSettings
from energy_bench.meters.zeus import ZeusMeter, from_settings, soc_domains
from tests.fakes.fake_pynvml import FakeClock, RampTrace, SineTrace
from tests.fakes.fake_zeus import (
    AppleSiliconMeasurement,
    FakeSoc,
    FakeZeus,
    FakeZeusCpu,
    FakeZeusGpu,
    JetsonMeasurement,
)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def meters():
    made: list[ZeusMeter] = []

    def build(*args, **kwargs) -> ZeusMeter:
        meter = ZeusMeter(*args, **kwargs)
        made.append(meter)
        return meter

    yield build
    for meter in made:
        meter.close()


def test_the_fake_refuses_a_window_name_in_use_like_zeus(monkeypatch):
    zeus = FakeZeus().install(monkeypatch)
    monitor = zeus.monitor_module.ZeusMonitor()
    monitor.begin_window("a")
    with pytest.raises(ValueError, match="Measurement window 'a' already exists"):
        monitor.begin_window("a")
    monitor.end_window("a")
    with pytest.raises(ValueError, match="Measurement window 'a' does not exist"):
        monitor.end_window("a")


def test_joules_per_device_match_the_traces(monkeypatch, clock, meters):
    gpus = [FakeZeusGpu(SineTrace(200, 40, 1.0)), FakeZeusGpu(RampTrace(100, 20))]
    cpus = [FakeZeusCpu(RampTrace(60, 0), RampTrace(8, 0)), FakeZeusCpu(RampTrace(50, 0), None)]
    zeus = FakeZeus(gpus, cpus, clock=clock).install(monkeypatch)
    meter = meters()
    assert (meter.name, meter.source, meter.min_round_s) == ("zeus", Source.MEASURED, 1.0)
    assert meter.domains() == ["zeus-gpu0", "zeus-gpu1", "zeus-cpu0", "zeus-cpu1"]
    clock.advance(0.3)
    t0 = zeus.elapsed()
    mark = meter.begin()
    clock.advance(1.5)
    reading = meter.end(mark)
    t1 = zeus.elapsed()
    expected = {
        "zeus-gpu0": gpus[0].trace.energy(t1) - gpus[0].trace.energy(t0),
        "zeus-gpu1": gpus[1].trace.energy(t1) - gpus[1].trace.energy(t0),
        "zeus-cpu0": 90.0,
        "zeus-cpu1": 75.0,
        "zeus-dram0": 12.0,
    }
    assert reading.joules == pytest.approx(expected)
    assert (reading.seconds, reading.source, reading.meter, reading.warnings) == (
        pytest.approx(1.5),
        Source.MEASURED,
        "zeus",
        (),
    )
    assert zeus.sync_requests == 0  # window.py synchronizes; Zeus's own sync would import torch


def test_overlapping_windows_get_names_of_their_own(monkeypatch, clock, meters):
    FakeZeus([FakeZeusGpu(RampTrace(100, 0))], clock=clock).install(monkeypatch)
    meter = meters()
    outer = meter.begin()
    clock.advance(1.0)
    inner = meter.begin()
    assert inner != outer
    clock.advance(2.0)
    assert meter.end(inner).joules == pytest.approx({"zeus-gpu0": 200.0})
    assert meter.end(outer).joules == pytest.approx({"zeus-gpu0": 300.0})


def test_short_window_is_noted(monkeypatch, clock, meters):
    FakeZeus(clock=clock).install(monkeypatch)
    meter = meters()
    mark = meter.begin()
    clock.advance(0.02)
    (note,) = meter.end(mark).warnings
    assert "20.0 ms is shorter than the counters' update period (100 ms)" in note


def test_cpu_only_is_sized_like_rapl(monkeypatch, meters):
    FakeZeus([], [FakeZeusCpu()]).install(monkeypatch)
    meter = meters()
    assert (meter.sees_accelerator, meter.min_round_s, meter.update_period_s) == (False, 0.1, 0.001)


def test_jetson_counts_the_input_rail_only(monkeypatch, clock, meters):
    soc = FakeSoc(
        JetsonMeasurement,
        {"cpu_energy_mj": RampTrace(3, 0), "gpu_energy_mj": RampTrace(9, 0), "total_energy_mj": RampTrace(20, 0)},
    )
    FakeZeus([], [], soc, clock=clock).install(monkeypatch)
    meter = meters()
    assert meter.sees_accelerator and meter.domains() == []
    mark = meter.begin()
    clock.advance(2.0)
    assert meter.end(mark).joules == pytest.approx({"zeus-soc-total": 40.0})  # cpu and gpu are inside it
    assert meter.info()["soc"] == {"library": "_Soc", "metrics": ["cpu", "gpu"]}


def test_apple_silicon_parts_without_double_counting():
    measured = AppleSiliconMeasurement(
        cpu_total_mj=5000,
        efficiency_cores_mj=[1000, 1500],
        performance_core_manager_mj=300,
        dram_mj=700,
        gpu_mj=2000,
        gpu_sram_mj=100,
        ane_mj=None,
    )
    assert soc_domains(measured) == {
        "zeus-soc-cpu": 5.0,
        "zeus-soc-dram": 0.7,
        "zeus-soc-gpu": 2.0,
        "zeus-soc-gpu-sram": 0.1,
    }
    assert soc_domains(None) == {}


def test_info_names_devices_and_versions(monkeypatch, meters):
    gpus = [FakeZeusGpu(name="AMD Instinct MI300X"), FakeZeusGpu(name="AMD Instinct MI300X")]
    FakeZeus(gpus, [FakeZeusCpu()], version="0.16.0").install(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    info = meters([1]).info()
    assert info["zeus_version"] == "0.16.0" and info["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert info["gpus"] == [{"domain": "zeus-gpu1", "index": 1, "name": "AMD Instinct MI300X"}]
    assert info["cpus"] == [{"domain": "zeus-cpu0", "index": 0}]
    assert (info["meter"], info["source"], info["gpu_library"], info["cpu_library"]) == (
        "zeus",
        "measured",
        "_Gpus",
        "_Cpus",
    )


def test_temperatures_through_zeus(monkeypatch, clock, meters):
    gpus = [FakeZeusGpu(temperature=lambda t: 60 - t), FakeZeusGpu(temperature=None)]
    FakeZeus(gpus, clock=clock).install(monkeypatch)
    meter = meters()
    assert meter.temperatures() == {"zeus-gpu0": 60.0}  # the GPU that cannot tell is left out
    clock.advance(5)
    assert meter.temperatures() == {"zeus-gpu0": 55.0}


def test_unavailable_and_wrong_gpus(monkeypatch):
    FakeZeus([], []).install(monkeypatch)
    with pytest.raises(MeterUnavailable, match="Zeus sees no GPU, no readable CPU counter and no SoC"):
        ZeusMeter()
    FakeZeus([FakeZeusGpu()]).install(monkeypatch)
    with pytest.raises(GpuIndexError, match=r"GPU index 3 out of range: Zeus sees 1 GPU\(s\), indices 0..0"):
        ZeusMeter([0, 3])
    FakeZeus(init_error=ValueError("invalid literal for int() with base 10: 'GPU-3f2a'")).install(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-3f2a")
    with pytest.raises(
        MeterUnavailable,
        match=r"Zeus cannot start: ValueError: invalid literal.*\(Zeus reads CUDA_VISIBLE_DEVICES as GPU",
    ):
        ZeusMeter()


def test_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "zeus", None)
    with pytest.raises(MeterNotInstalled, match=r"zeus is not installed \(pip install -e '\.\[zeus\]'"):
        from_settings(MeterSettings())


def test_a_failing_window_is_a_meter_error(monkeypatch, meters):
    FakeZeus().install(monkeypatch)
    meter = meters()
    with pytest.raises(MeterError, match="Zeus window end failed: ValueError: Measurement window 'nope'"):
        meter.end("nope")
    meter.close()
    with pytest.raises(MeterError, match="closed"):
        meter.begin()


def test_entry_point_factory_passes_the_gpus(monkeypatch, meters):
    zeus = FakeZeus([FakeZeusGpu(), FakeZeusGpu()]).install(monkeypatch)
    meter = from_settings(MeterSettings(gpus=(1,)))
    try:
        assert meter.domains() == ["zeus-gpu1"] and zeus.monitors[-1].gpu_indices == [1]
    finally:
        meter.close()


def test_the_real_zeus_package():
    """Where zeus is installed: its monitor either measures something here or the meter says it sees nothing."""
    pytest.importorskip("zeus.monitor")
    try:
        meter = ZeusMeter()
    except MeterUnavailable as exc:
        assert "Zeus sees no GPU, no readable CPU counter and no SoC" in str(exc) or "Zeus cannot start" in str(exc)
        return
    try:
        reading = meter.end(meter.begin())
        assert reading.meter == "zeus" and set(meter.domains()) <= set(reading.joules)
        assert meter.info()["zeus_version"]
    finally:
        meter.close()
