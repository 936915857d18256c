"""select_meter: named meters work or say why; auto steps down with a warning; meters plugged in by entry point."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import warnings
from pathlib import Path

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
    meter_names,
    select_meter,
)
from energy_bench.meters import select as select_mod
from tests.fakes import meter_plugins
from tests.fakes.fake_pynvml import FakeGpu, FakeNvml
from tests.fakes.fake_zeus import FakeZeus, FakeZeusCpu, FakeZeusGpu
from tests.fakes.powercap import FakePowercap

GROUP = "energy_bench.meters"
#: the seam itself, before the autouse fixture below replaces it
REAL_ENTRY_POINTS = select_mod.meter_entry_points


def entry(name: str, target: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name, target, GROUP)


@pytest.fixture(autouse=True)
def plugged(monkeypatch):
    """No plugged-in meter unless a test adds some: ``plugged.extend([entry(...), ...])``; every GPU visible."""
    entries: list[importlib.metadata.EntryPoint] = []
    monkeypatch.setattr(select_mod, "meter_entry_points", lambda: list(entries))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    return entries


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
    assert message.endswith("using the CPU-time estimate: CPU time x 12 W per vCPU (set by the user; no bounds)")


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


# ---------------------------------------------------------------------------- CUDA_VISIBLE_DEVICES in auto


def test_auto_with_a_gpu_that_does_not_exist_in_cuda_visible_devices_is_an_error(gpu, powercap, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,7")
    with pytest.raises(GpuIndexError, match="GPU 7 does not exist"):
        select_meter("auto", powercap_root=powercap)
    assert gpu.init_count == 0


@pytest.mark.parametrize("visible, reason", [("-1", "hides every GPU"), ("MIG-GPU-abc/1/0", "names MIG instances")])
def test_auto_with_no_measurable_gpu_visible_falls_back(gpu, powercap, closing, monkeypatch, visible, reason):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    with pytest.warns(EnergyBenchWarning, match=f"{reason}.*measuring the CPU with RAPL only"):
        assert isinstance(closing(select_meter("auto", powercap_root=powercap)), RaplMeter)


def test_named_nvml_with_mig_says_why(gpu, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-GPU-abc/1/0")
    with pytest.raises(MeterUnavailable, match="NVML has no energy counter per MIG instance"):
        select_meter("nvml")


# ---------------------------------------------------------------------------- plugged-in meters


def test_plugged_in_meters_are_named_and_built_with_the_settings(plugged, closing):
    plugged.extend(
        [entry("steady", "tests.fakes.meter_plugins:SteadyMeter"), entry("Shy", "tests.fakes.meter_plugins:shy_meter")]
    )
    assert meter_names() == ("auto", "nvml", "rapl", "estimate", "shy", "steady")
    meter = closing(select_meter("steady", gpus=[1, 0], cpu_watts=7.0))
    assert isinstance(meter, meter_plugins.SteadyMeter)
    settings = meter_plugins.SteadyMeter.built_with[-1]
    assert (settings.gpus, settings.cpu_watts) == ((1, 0), 7.0)
    assert closing(select_meter("shy")).name == "shy"


def test_a_plug_in_cannot_take_a_built_in_name(plugged):
    plugged.append(entry("nvml", "tests.fakes.meter_plugins:SteadyMeter"))
    with pytest.warns(EnergyBenchWarning, match="'nvml' is a built-in name"):
        assert meter_names() == ("auto", "nvml", "rapl", "estimate")


@pytest.mark.parametrize(
    "target, message",
    [
        (
            "tests.fakes.no_such_module:Meter",
            r"meter 'bad' cannot be loaded from entry point tests.fakes.no_such_module:Meter: ModuleNotFoundError",
        ),
        ("tests.fakes.meter_plugins:NoSuchName", "cannot be loaded .*AttributeError"),
        (
            "tests.fakes.meter_plugins:crashing_meter",
            r"meter 'bad' \(tests.fakes.meter_plugins:crashing_meter\) cannot be built: RuntimeError: boom",
        ),
        ("tests.fakes.meter_plugins:not_a_meter", "returned int, not a Meter"),
        ("tests.fakes.meter_plugins:unavailable_meter", "^the frobnicator is unplugged$"),
    ],
)
def test_a_named_plug_in_that_fails_says_why(plugged, target, message):
    plugged.append(entry("bad", target))
    with pytest.raises(MeterUnavailable, match=message):
        select_meter("bad")


def test_unknown_name_lists_the_plug_ins(plugged):
    plugged.append(entry("steady", "tests.fakes.meter_plugins:SteadyMeter"))
    with pytest.raises(ValueError, match="expected one of auto, nvml, rapl, estimate, steady"):
        select_meter("joulemeter")


def test_auto_tries_plug_ins_that_opt_in_after_the_built_ins(plugged, no_nvml, denied, powercap, closing):
    plugged.extend(
        [
            entry("a-broken", "tests.fakes.no_such_module:Meter"),
            entry("b-unavailable", "tests.fakes.meter_plugins:unavailable_meter_auto"),
            entry("c-shy", "tests.fakes.meter_plugins:shy_meter"),
            entry("d-steady", "tests.fakes.meter_plugins:SteadyMeter"),
        ]
    )
    with pytest.warns(EnergyBenchWarning) as record:
        meter = closing(select_meter("auto", powercap_root=denied))
    assert isinstance(meter, meter_plugins.SteadyMeter) and meter.name == "steady"
    loading, chosen = [str(w.message) for w in record]
    assert loading.startswith("meter 'a-broken' cannot be loaded")
    assert chosen.startswith("NVML library not found") and "the auto frobnicator is unplugged" in chosen
    assert chosen.endswith("measuring with steady")
    # rapl comes before any plug-in
    with pytest.warns(EnergyBenchWarning, match="measuring the CPU with RAPL only"):
        assert isinstance(closing(select_meter("auto", powercap_root=powercap)), RaplMeter)


# ---------------------------------------------------------------------------- zeus in auto


@pytest.fixture
def zeus_plugged(plugged):
    plugged.append(entry("zeus", "energy_bench.meters.zeus:from_settings"))
    return plugged


def test_auto_takes_zeus_for_a_gpu_nvml_cannot_see(zeus_plugged, no_nvml, powercap, monkeypatch, closing):
    FakeZeus([FakeZeusGpu()], [FakeZeusCpu()]).install(monkeypatch)
    with pytest.warns(EnergyBenchWarning, match="^NVML library not found .*; measuring with zeus$"):
        meter = closing(select_meter("auto", powercap_root=powercap))
    assert meter.name == "zeus" and meter.domains() == ["zeus-gpu0", "zeus-cpu0"]


def test_auto_prefers_rapl_to_zeus_for_cpus_only(zeus_plugged, no_nvml, powercap, denied, monkeypatch, closing):
    FakeZeus([], [FakeZeusCpu()]).install(monkeypatch)
    with pytest.warns(EnergyBenchWarning, match="measuring the CPU with RAPL only"):
        assert isinstance(closing(select_meter("auto", powercap_root=powercap)), RaplMeter)
    # where RAPL is unreadable to us (Zeus reads it through its daemon), zeus measures the CPUs
    with pytest.warns(EnergyBenchWarning, match="measuring with zeus"):
        assert closing(select_meter("auto", powercap_root=denied)).name == "zeus"


def test_auto_passes_over_zeus_when_it_is_not_installed(zeus_plugged, no_nvml, denied, monkeypatch):
    monkeypatch.setitem(sys.modules, "zeus", None)  # makes ``import zeus`` raise ImportError
    with pytest.warns(EnergyBenchWarning) as record:
        assert isinstance(select_meter("auto", powercap_root=denied), EstimateMeter)
    (message,) = [str(w.message) for w in record]
    assert "zeus is not installed" not in message and message.startswith("NVML library not found")


def test_auto_says_why_zeus_did_not_measure(zeus_plugged, no_nvml, denied, monkeypatch):
    FakeZeus([], []).install(monkeypatch)
    with pytest.warns(EnergyBenchWarning, match="Zeus sees no GPU, no readable CPU counter and no SoC; RAPL"):
        assert isinstance(select_meter("auto", powercap_root=denied), EstimateMeter)


# ---------------------------------------------------------------------------- this package's own entry point


def test_pyproject_registers_the_zeus_meter():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    assert project["entry-points"][GROUP] == {"zeus": "energy_bench.meters.zeus:from_settings"}
    assert entry("zeus", "energy_bench.meters.zeus:from_settings").load().__name__ == "from_settings"
    assert any(req.startswith("zeus") for req in project["optional-dependencies"]["zeus"])


def test_the_installed_package_registers_the_zeus_meter():
    found = {e.name: e.value for e in importlib.metadata.entry_points(group=GROUP)}
    if not found:
        pytest.skip("the installed pytest-energy-bench predates the energy_bench.meters entry points: reinstall it")
    assert found["zeus"] == "energy_bench.meters.zeus:from_settings"
    assert "zeus" in {e.name for e in REAL_ENTRY_POINTS()}
