"""NVML meter against a fake pynvml whose GPUs follow known power traces."""

from __future__ import annotations

import ctypes
import inspect
import itertools
import sys
import threading
import time
import warnings

import pytest

from energy_bench.meters import EnergyBenchWarning, GpuIndexError, MeterError, MeterUnavailable, Source
from energy_bench.meters.nvml import NvmlMeter, PowerIntegrator
from tests.fakes import burn_cpu
from tests.fakes.fake_pynvml import (
    NVML_ERROR_FUNCTION_NOT_FOUND,
    NVML_ERROR_GPU_IS_LOST,
    FakeClock,
    FakeGpu,
    FakeNvml,
    NVMLError,
    NVMLError_NotSupported,
    RampTrace,
    SineTrace,
)


@pytest.fixture(autouse=True)
def cuda_environment(monkeypatch):
    """Every GPU visible, numbered in PCI bus order (CUDA's numbering has its own tests in test_meter_gpus.py)."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


@pytest.fixture
def install(monkeypatch):
    """install(FakeNvml(...)) puts the fake module where ``import pynvml`` finds it."""

    def put(fake: FakeNvml) -> FakeNvml:
        monkeypatch.setitem(sys.modules, "pynvml", fake.module)
        return fake

    return put


@pytest.fixture
def meters():
    """Meters built in a test, closed afterwards even when it fails."""
    made: list[NvmlMeter] = []

    def build(*args, **kwargs) -> NvmlMeter:
        meter = NvmlMeter(*args, **kwargs)
        made.append(meter)
        return meter

    yield build
    for meter in made:
        meter.close()


def test_fake_errors_have_the_real_shape():
    err = NVMLError(3)
    assert isinstance(err, NVMLError_NotSupported) and err.value == 3 and str(err) == "Not Supported"
    assert NVMLError_NotSupported().value == 3


#: every NVML call the meters make; the fake must offer each with the real signature
NVML_CALLS = [
    "nvmlInit",
    "nvmlShutdown",
    "nvmlSystemGetDriverVersion",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlDeviceGetHandleByUUID",
    "nvmlDeviceGetHandleByPciBusId",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetPciInfo",
    "nvmlDeviceGetName",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetTemperature",
]


def test_fake_has_the_real_signatures_and_pci_layout():
    real = pytest.importorskip("pynvml")
    fake = FakeNvml().module
    for name in NVML_CALLS:
        assert list(inspect.signature(getattr(fake, name)).parameters) == list(
            inspect.signature(getattr(real, name)).parameters
        ), name
    assert [f[0] for f in fake.nvmlPciInfo_t._fields_] == [f[0] for f in real.nvmlPciInfo_t._fields_]
    assert ctypes.sizeof(fake.nvmlPciInfo_t) == ctypes.sizeof(real.nvmlPciInfo_t)
    assert fake.NVML_TEMPERATURE_GPU == real.NVML_TEMPERATURE_GPU
    assert fake.NVML_ERROR_NOT_FOUND == real.NVML_ERROR_NOT_FOUND


def test_counter_matches_exact_integral(install, meters):
    clock = FakeClock()
    fake = install(FakeNvml([FakeGpu(SineTrace(150, 50, 1.0))], clock=clock))
    meter = meters(clock=clock)
    assert (meter.name, meter.source, meter.domains()) == ("nvml-counter", Source.MEASURED, ["gpu0"])
    clock.advance(0.3)
    start = clock()
    mark = meter.begin()
    clock.advance(0.5)
    reading = meter.end(mark)
    exact = fake.exact_joules(0, start, clock())
    # The counter holds whole mJ: two truncated reads are off by less than 2 mJ.
    assert reading.joules["gpu0"] == pytest.approx(exact, abs=2e-3)
    assert reading.seconds == pytest.approx(0.5)
    assert (reading.meter, reading.source, reading.warnings) == ("nvml-counter", Source.MEASURED, ())
    assert "nvmlDeviceGetPowerUsage" not in fake.calls  # the counter path never polls


def test_trapezoid_error_within_analytic_bound():
    """Power sampled every 20 ms over 0.4 s: |error| <= T h^2 max|P''| / 12 (about 0.03 J here).

    0.4 s, not a half period, so that a rectangle rule would miss the bound (by ~0.3 J)."""
    clock, trace = FakeClock(0.0), SineTrace(150, 50, 1.0)
    integrator = PowerIntegrator(
        lambda: {0: trace.power(clock())}, period_s=0.02, clock=clock, error_types=(NVMLError,)
    )
    _, start, _ = integrator.sample()
    for _ in range(20):
        clock.advance(0.02)
        _, joules, errors = integrator.sample()
    bound = 0.4 * 0.02**2 * trace.max_second_derivative() / 12
    assert abs(joules[0] - start[0] - trace.energy(0.4)) <= bound
    assert errors == 0 and integrator.samples == 21


def logged_power_reads(fake: FakeNvml) -> list[float]:
    """Seconds since the fake started at each power read, appended as the meter reads."""
    read, times = fake.module.nvmlDeviceGetPowerUsage, []

    def logged(handle):
        times.append(fake.elapsed())
        return read(handle)

    fake.module.nvmlDeviceGetPowerUsage = logged
    return times


def test_counter_and_polling_agree_with_exact_integral_in_real_time(install, meters):
    """Both paths over (nearly) the same window of at least 0.5 s with the polling thread running.

    Each path is held to the exact integral over its own window. The polled one may also be off by the trapezoid
    rule's error over the gaps the thread actually left (T h^2 max|P''| / 12 per gap): a loaded machine wakes the
    thread late, and that must widen the bound, not fail the test.
    """
    fake = install(FakeNvml([FakeGpu(SineTrace(150, 50, 1.0))]))
    reads = logged_power_reads(fake)
    counter = meters()
    polled = meters(polling=True, poll_period_s=0.01)
    assert polled.name == "nvml-power" and polled.info()["gpus"][0]["source"] == "polling"
    c_mark, p_mark = counter.begin(), polled.begin()
    start, deadline = time.monotonic(), time.monotonic() + 60
    inside = fake.elapsed(p_mark.time)
    # half a second, and three samples of the thread's own between the boundaries however late it wakes
    while (time.monotonic() < start + 0.5 or len([t for t in reads if t > inside]) < 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    p_reading, c_reading = polled.end(p_mark), counter.end(c_mark)
    begin_s, end_s = fake.elapsed(p_mark.time), fake.elapsed(p_mark.time + p_reading.seconds)
    window = [t for t in reads if begin_s <= t <= end_s]
    assert len(window) >= 5, window  # the two boundaries and the thread's own samples
    gaps = [b - a for a, b in itertools.pairwise(window)]
    bound = sum(h**3 for h in gaps) * SineTrace(150, 50, 1.0).max_second_derivative() / 12
    exact = fake.exact_joules(0, p_mark.time, p_mark.time + p_reading.seconds)
    assert abs(p_reading.joules["gpu0"] - exact) <= bound + 0.02 * exact
    c_exact = fake.exact_joules(0, c_mark.time, c_mark.time + c_reading.seconds)
    assert c_reading.joules["gpu0"] == pytest.approx(c_exact, rel=0.02)


@pytest.mark.filterwarnings("ignore:energy windows shorter")
def test_nested_windows_each_get_their_own_energy(install, meters):
    """Marks hold integral values, so overlapping windows do not disturb each other."""
    clock = FakeClock()
    fake = install(FakeNvml([FakeGpu(RampTrace(100, 40))], clock=clock))
    # A one-hour poll period: only window boundaries sample, and the trapezoid is exact on a ramp.
    for meter in (meters(clock=clock), meters(polling=True, poll_period_s=3600, clock=clock)):
        t0 = clock()
        outer = meter.begin()
        clock.advance(0.4)
        t1 = clock()
        inner = meter.begin()
        clock.advance(0.3)
        inner_reading = meter.end(inner)
        t2 = clock()
        clock.advance(0.2)
        outer_reading = meter.end(outer)
        assert inner_reading.joules["gpu0"] == pytest.approx(fake.exact_joules(0, t1, t2), abs=2e-3)
        assert outer_reading.joules["gpu0"] == pytest.approx(fake.exact_joules(0, t0, clock()), abs=2e-3)


@pytest.mark.filterwarnings("ignore:energy windows shorter")
def test_several_gpus_mixed_sources_and_selection(install, meters):
    clock = FakeClock()
    gpus = [FakeGpu(RampTrace(100, 10), name="A"), FakeGpu(RampTrace(60, 0), name="B", counter=False)]
    fake = install(FakeNvml(gpus, clock=clock))
    meter = meters(poll_period_s=3600, clock=clock)
    assert meter.name == "nvml-power" and meter.domains() == ["gpu0", "gpu1"]
    t0 = clock()
    mark = meter.begin()
    clock.advance(1.0)
    reading = meter.end(mark)
    assert reading.joules["gpu0"] == pytest.approx(fake.exact_joules(0, t0, clock()), abs=2e-3)
    assert reading.joules["gpu1"] == pytest.approx(60.0, abs=1e-6)
    assert reading.total == pytest.approx(sum(reading.joules.values()))

    only_second = meters([1], clock=clock)
    assert only_second.domains() == ["gpu1"]


def test_info_describes_devices(install, meters):
    gpus = [FakeGpu(name="NVIDIA H100"), FakeGpu(name="Old GPU", counter=False, power_limit_mw=None)]
    install(FakeNvml(gpus, driver_version="535.1"))
    info = meters(poll_period_s=0.05).info()
    assert info["driver_version"] == "535.1" and info["poll_period_s"] == 0.05
    assert info["CUDA_VISIBLE_DEVICES"] is None and info["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert info["gpus"] == [
        {
            "domain": "gpu0",
            "cuda_index": 0,
            "nvml_index": 0,
            "uuid": "GPU-00000001-0000-0001-0000-000100000001",
            "pci_bus_id": "00000000:1A:00.0",
            "name": "NVIDIA H100",
            "power_limit_w": 300.0,
            "source": "counter",
        },
        {
            "domain": "gpu1",
            "cuda_index": 1,
            "nvml_index": 1,
            "uuid": "GPU-00000002-0000-0002-0000-000200000002",
            "pci_bus_id": "00000000:2A:00.0",
            "name": "Old GPU",
            "power_limit_w": None,
            "source": "polling",
            "counter_unavailable": "Not Supported",
        },
    ]


def test_cuda_visible_devices_picks_and_renumbers(install, meters, monkeypatch):
    """CUDA_VISIBLE_DEVICES=2,0: domain gpu0 is NVML's GPU 2, gpu1 is NVML's GPU 0; --energy-gpus=1 is NVML's 0."""
    clock = FakeClock()
    gpus = [FakeGpu(RampTrace(100 + 10 * i, 0)) for i in range(3)]
    install(FakeNvml(gpus, clock=clock))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    meter = meters(clock=clock)
    assert meter.domains() == ["gpu0", "gpu1"]
    assert [(g["domain"], g["nvml_index"]) for g in meter.info()["gpus"]] == [("gpu0", 2), ("gpu1", 0)]
    mark = meter.begin()
    clock.advance(1.0)
    assert meter.end(mark).joules == pytest.approx({"gpu0": 120.0, "gpu1": 100.0}, abs=2e-3)
    only = meters([1], clock=clock)
    assert [(g["domain"], g["nvml_index"]) for g in only.info()["gpus"]] == [("gpu1", 0)]
    assert meter.info()["CUDA_VISIBLE_DEVICES"] == "2,0"


def test_temperatures_per_domain(install, meters, monkeypatch):
    gpus = [FakeGpu(temperature=61.7), FakeGpu(temperature=None), FakeGpu(temperature=lambda t: 50 + t)]
    fake = install(FakeNvml(gpus, clock=FakeClock()))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,1,0")
    meter = meters()
    # whole degrees as NVML gives them; a sensor that cannot be read is left out
    assert meter.temperatures() == {"gpu0": 50.0, "gpu2": 61.0}
    fake.clock.advance(3.0)
    assert meter.temperatures()["gpu0"] == 53.0
    meter.close()
    assert meter.temperatures() == {}


def test_temperature_falls_back_to_the_versioned_call(install, meters):
    fake = install(FakeNvml([FakeGpu(temperature=70.0)]))

    def removed(handle, sensor):
        raise NVMLError(NVML_ERROR_FUNCTION_NOT_FOUND)

    fake.module.nvmlDeviceGetTemperature = removed
    fake.module.nvmlDeviceGetTemperatureV = lambda handle, sensor: 68
    assert meters().temperatures() == {"gpu0": 68.0}


def test_short_window_warns(install, meters):
    clock = FakeClock()
    install(FakeNvml(clock=clock))
    meter = meters(clock=clock)
    mark = meter.begin()
    clock.advance(0.05)
    with pytest.warns(EnergyBenchWarning, match="shorter than 100 ms"):
        reading = meter.end(mark)
    assert len(reading.warnings) == 1 and "50.0 ms" in reading.warnings[0]
    mark = meter.begin()
    clock.advance(0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert meter.end(mark).warnings == ()


def test_error_at_window_end_raises_meter_error(install, meters):
    clock = FakeClock()
    fake = install(FakeNvml(clock=clock))
    meter = meters(clock=clock)
    mark = meter.begin()
    fake.gpus[0].fail = NVML_ERROR_GPU_IS_LOST
    with pytest.raises(MeterError, match="NVML read failed at window end: GPU is lost"):
        meter.end(mark)


@pytest.mark.filterwarnings("ignore:energy windows shorter")
def test_error_in_polling_thread_fails_only_that_window(install, meters):
    fake = install(FakeNvml([FakeGpu(counter=False)]))
    meter = meters(poll_period_s=0.002)
    mark = meter.begin()
    fake.gpus[0].fail = NVML_ERROR_GPU_IS_LOST
    deadline = time.monotonic() + 60  # however late a loaded machine wakes the thread
    while not meter._integrator.errors_since(mark.errors) and time.monotonic() < deadline:
        time.sleep(0.005)
    fake.gpus[0].fail = None
    assert meter._integrator.errors_since(mark.errors), "the polling thread never sampled"
    with pytest.raises(MeterError, match="polling failed during the window: GPU is lost"):
        meter.end(mark)
    mark = meter.begin()
    time.sleep(0.02)
    assert meter.end(mark).joules["gpu0"] > 0


def test_close_stops_thread_and_shuts_nvml_down(install):
    fake = install(FakeNvml([FakeGpu(counter=False)]))
    meter = NvmlMeter(poll_period_s=0.005)
    meter.begin()
    thread = meter._integrator._thread
    assert fake.init_count == 1 and thread.is_alive()
    meter.close()
    meter.close()  # idempotent
    assert fake.init_count == 0 and not thread.is_alive()
    with pytest.raises(MeterError, match="closed"):
        meter.begin()
    assert meter.info()["gpus"][0]["name"] == "NVIDIA Fake A100"  # still describable after close


def test_polling_thread_accounts_its_own_cpu_and_wall_time(install, meters):
    """The stats are the polling thread's own: not this thread's CPU, and within the wall time the test saw.

    How small its share of a core is (the 1 % target) depends on the machine: benchmarks/test_overhead.py times it.
    """
    install(FakeNvml([FakeGpu(counter=False)]))
    meter = meters()
    wall0, process0, main0 = time.monotonic(), time.process_time(), time.thread_time()
    mark = meter.begin()
    burn_cpu(0.2)  # CPU of this thread, which the polling thread must not count as its own
    deadline = time.monotonic() + 60
    while meter.polling_stats()["samples"] < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    meter.end(mark)
    stats = meter.polling_stats()
    other_threads_cpu = (time.process_time() - process0) - (time.thread_time() - main0)
    assert stats["samples"] >= 5
    assert 0 < stats["thread_cpu_s"] <= other_threads_cpu + 1e-3
    assert stats["thread_cpu_s"] <= stats["thread_wall_s"] <= time.monotonic() - wall0


@pytest.mark.parametrize(
    "fake, message",
    [
        (FakeNvml(library_found=False), "NVML library not found"),
        (FakeNvml([]), "NVML sees no GPU"),
        (
            FakeNvml([FakeGpu(counter=False, power_works=False)]),
            r"neither an energy counter \(Not Supported\) nor a power reading \(Not Supported\)",
        ),
    ],
)
def test_unavailable_reasons(install, fake, message):
    install(fake)
    with pytest.raises(MeterUnavailable, match=message):
        NvmlMeter()
    assert fake.init_count == 0  # whatever was initialised was shut down again


def test_gpu_index_out_of_range(install):
    fake = install(FakeNvml([FakeGpu(), FakeGpu()]))
    with pytest.raises(GpuIndexError, match=r"GPU index 2 out of range: CUDA sees 2 GPU\(s\), indices 0..1"):
        NvmlMeter([0, 2])
    assert fake.init_count == 0


def test_missing_python_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes ``import pynvml`` raise ImportError
    with pytest.raises(MeterUnavailable, match="NVML library not found .*nvidia-ml-py"):
        NvmlMeter()


def test_real_pynvml_without_driver_is_unavailable():
    """On machines without an NVIDIA driver the real module reports the missing library."""
    pytest.importorskip("pynvml")
    try:
        meter = NvmlMeter()
    except MeterUnavailable as exc:
        assert str(exc)
    else:  # a real GPU: the meter must work
        try:
            mark = meter.begin()
            assert set(meter.end(mark).joules) == set(meter.domains())
        finally:
            meter.close()


@pytest.mark.filterwarnings("ignore:energy windows shorter")
def test_concurrent_windows_from_threads(install, meters):
    """begin/end from several threads while the polling thread samples: no lost or torn state."""
    install(FakeNvml([FakeGpu(RampTrace(100, 0), counter=False)]))
    meter = meters(poll_period_s=0.001)
    results: list[float] = []

    def window():
        mark = meter.begin()
        time.sleep(0.05)
        reading = meter.end(mark)
        results.append(reading.joules["gpu0"] / reading.seconds)

    threads = [threading.Thread(target=window) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # constant 100 W and each window's seconds taken from its own boundary samples: exactly 100 W, however the
    # threads were scheduled (a torn or lost sample would break it)
    assert results == pytest.approx([100.0] * 4, rel=1e-6)


def test_close_is_prompt_with_a_long_poll_period(install):
    install(FakeNvml([FakeGpu(counter=False)]))
    meter = NvmlMeter(poll_period_s=3600)
    meter.begin()
    started = time.monotonic()
    meter.close()
    # the thread sleeps in slices of STOP_SLICE_S: close() must not wait out the hour (a generous bound for a loaded
    # machine, still far below the period)
    assert time.monotonic() - started < 60 and not meter._integrator._thread.is_alive()
