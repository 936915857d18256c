"""select_meter: named meters work or say why; auto steps down with a warning."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from energy_bench.meters import (
    CompositeMeter,
    EnergyBenchWarning,
    EstimateMeter,
    GpuIndexError,
    MeterUnavailable,
    NvmlMeter,
    RaplMeter,
    Source,
    select_meter,
)
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml
from tests.fakes.powercap import FakePowercap


@pytest.fixture
def closing():
    made = []

    def keep(meter):
        made.append(meter)
        return meter

    yield keep
    for meter in made:
        meter.close()


@pytest.fixture
def gpu(monkeypatch):
    fake = FakeNvml([FakeGpu(), FakeGpu()])
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    return fake


@pytest.fixture
def no_nvml(monkeypatch):
    fake = FakeNvml(library_found=False)
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    return fake


@pytest.fixture
def powercap(tmp_path):
    FakePowercap(tmp_path / "powercap")
    return str(tmp_path / "powercap")


@pytest.fixture
def denied(tmp_path):
    """A powercap root whose counter cannot be read (a directory where the file should be)."""
    tree = FakePowercap(tmp_path / "denied", dram=False)
    tree.counter_path("package-0").unlink()
    tree.counter_path("package-0").mkdir()
    return str(tmp_path / "denied")


def test_named_meters(gpu, powercap, closing):
    assert isinstance(closing(select_meter("nvml", gpus=[1])), NvmlMeter)
    assert closing(select_meter("nvml", gpus=[1])).domains() == ["gpu1"]
    assert isinstance(closing(select_meter("rapl", powercap_root=powercap)), RaplMeter)
    meter = select_meter("estimate", cpu_watts=4.5)
    assert isinstance(meter, EstimateMeter) and meter.cpu_watts == 4.5


@pytest.mark.parametrize(
    "kind, message",
    [("nvml", "NVML library not found"), ("rapl", "powercap root .* does not exist")],
)
def test_named_meter_that_cannot_work_says_why(no_nvml, tmp_path, kind, message):
    with pytest.raises(MeterUnavailable, match=message):
        select_meter(kind, powercap_root=str(tmp_path / "missing"))


def test_auto_gpu_and_rapl_is_composite(gpu, powercap, closing):
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnergyBenchWarning)  # nothing to fall back from: no warning
        meter = closing(select_meter("auto", powercap_root=powercap))
    assert isinstance(meter, CompositeMeter) and meter.name == "nvml-counter+rapl"
    assert meter.domains() == ["gpu0", "gpu1", "package-0", "dram-0"]
    assert meter.source is Source.MEASURED
    with pytest.warns(EnergyBenchWarning, match="shorter than 100 ms"):
        reading = meter.end(meter.begin())
    assert set(reading.joules) == set(meter.domains())


def test_auto_gpu_without_rapl_warns_cpu_not_counted(gpu, denied, closing):
    with pytest.warns(EnergyBenchWarning, match="RAPL counters unreadable: .*measuring the GPUs only"):
        meter = closing(select_meter("auto", powercap_root=denied))
    assert isinstance(meter, NvmlMeter)


def test_auto_rapl_without_gpu_warns(no_nvml, powercap, closing):
    with pytest.warns(EnergyBenchWarning, match="NVML library not found .*measuring the CPU with RAPL only"):
        meter = closing(select_meter("auto", powercap_root=powercap))
    assert isinstance(meter, RaplMeter)


def test_auto_falls_back_to_estimate_with_both_reasons(no_nvml, denied):
    with pytest.warns(EnergyBenchWarning) as record:
        meter = select_meter("auto", powercap_root=denied, cpu_watts=12)
    assert isinstance(meter, EstimateMeter) and meter.cpu_watts == 12
    (message,) = [str(w.message) for w in record]
    assert message.startswith("NVML library not found")
    assert "RAPL counters unreadable: " in message and "energy_uj: Is a directory" in message
    assert message.endswith("using the CPU-time estimate (12 W per busy core)")


def test_auto_with_no_gpu_falls_back(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([]).module)
    with pytest.warns(EnergyBenchWarning, match="NVML sees no GPU; RAPL .* does not exist; using the CPU-time"):
        assert isinstance(select_meter("auto", powercap_root=str(tmp_path / "none")), EstimateMeter)


def test_auto_with_wrong_gpu_index_is_an_error(gpu, powercap):
    with pytest.raises(GpuIndexError, match="GPU index 5 out of range"):
        select_meter("auto", gpus=[5], powercap_root=powercap)
    assert gpu.init_count == 0


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown meter 'joulemeter'"):
        select_meter("joulemeter")


def test_meters_import_neither_pytest_nor_torch():
    code = (
        "import sys, energy_bench.meters as m\n"
        "m.select_meter('estimate')\n"
        "bad = [name for name in ('pytest', 'torch') if name in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
