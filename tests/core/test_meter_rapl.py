"""RAPL meter on a fake powercap tree: zones, wraparound, unreadable counters."""

from __future__ import annotations

import errno
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energy_bench.meters import MeterError, MeterUnavailable, RaplMeter, Source
from energy_bench.meters import rapl as rapl_module
from tests.fakes.fake_pynvml import FakeClock
from tests.fakes.powercap import FakePowercap


@pytest.fixture
def meters():
    made: list[RaplMeter] = []

    def build(*args, **kwargs) -> RaplMeter:
        kwargs.setdefault("guard_period_s", None)
        meter = RaplMeter(*args, **kwargs)
        made.append(meter)
        return meter

    yield build
    for meter in made:
        meter.close()


def test_zones_packages_and_dram_only(tmp_path, meters):
    """core is inside the package, psys contains it, mmio repeats it: none of them is counted."""
    tree = FakePowercap(tmp_path, packages=2, psys=True, mmio=True)
    clock = FakeClock()
    meter = meters(str(tmp_path), clock=clock)
    assert meter.domains() == ["package-0", "dram-0", "package-1", "dram-1"]
    assert (meter.name, meter.source) == ("rapl", Source.MEASURED)
    mark = meter.begin()
    for key, uj in {
        "package-0": 5_000_000,
        "dram-0": 1_500_000,
        "package-1": 7_250_000,
        "core-0": 999,
        "psys": 123,
        "mmio-package-0": 456,
    }.items():
        tree.add(key, uj)
    clock.advance(2.0)
    reading = meter.end(mark)
    assert reading.joules == {"package-0": 5.0, "dram-0": 1.5, "package-1": 7.25, "dram-1": 0.0}
    assert reading.seconds == 2.0 and reading.meter == "rapl" and reading.source is Source.MEASURED


def test_single_wrap(tmp_path, meters):
    tree = FakePowercap(tmp_path, max_range_uj=1_000_000, start_uj=900_000, dram=False)
    meter = meters(str(tmp_path))
    mark = meter.begin()
    tree.add("package-0", 300_000)  # 900_000 -> 200_000
    assert tree.get("package-0") == 200_000
    assert meter.end(mark).joules["package-0"] == pytest.approx(0.3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_wraparound_property(tmp_path_factory, data):
    """Random counter sequences with wraps (each step below the range): measured == true sum."""
    max_range = data.draw(st.integers(min_value=2, max_value=2**40), label="max_range")
    start = data.draw(st.integers(min_value=0, max_value=max_range - 1), label="start")
    steps = data.draw(st.lists(st.integers(min_value=0, max_value=max_range - 1), max_size=30), label="steps")
    tree = FakePowercap(
        tmp_path_factory.mktemp("powercap"), max_range_uj=max_range, start_uj=start, core=False, dram=False
    )
    meter = RaplMeter(str(tree.root), guard_period_s=None)
    try:
        mark = meter.begin()
        for step in steps:
            tree.add("package-0", step)
            meter.update()  # any read (another window's begin/end, the guard) folds the wrap in
        assert meter.end(mark).joules["package-0"] == sum(steps) / 1e6
    finally:
        meter.close()


def test_overlapping_windows_share_reads(tmp_path, meters):
    tree = FakePowercap(tmp_path, max_range_uj=1_000_000, dram=False)
    meter = meters(str(tmp_path))
    long_window = meter.begin()
    for _ in range(5):  # five short windows, each wrapping the counter once
        short = meter.begin()
        tree.add("package-0", 800_000)
        assert meter.end(short).joules["package-0"] == pytest.approx(0.8)
    assert meter.end(long_window).joules["package-0"] == pytest.approx(4.0)


def wait_for_guard_read(meter: RaplMeter, raw_uj: int, timeout_s: float = 60.0) -> None:
    """Until the guard thread has read the counter at ``raw_uj`` (nothing else reads it meanwhile): a loaded machine
    may wake the thread many periods late, and a fixed sleep would then miss a wrap."""
    deadline = time.monotonic() + timeout_s
    while meter._zones[0].last_uj != raw_uj:
        assert time.monotonic() < deadline, "the guard thread never read the counter"
        time.sleep(0.005)


def test_guard_thread_keeps_long_windows_correct(tmp_path, meters):
    tree = FakePowercap(tmp_path, max_range_uj=1_000_000, dram=False)
    guarded, unguarded = meters(str(tmp_path), guard_period_s=0.01), meters(str(tmp_path))
    g_mark, u_mark = guarded.begin(), unguarded.begin()
    for _ in range(3):
        tree.add("package-0", 600_000)
        wait_for_guard_read(guarded, tree.get("package-0"))
    assert guarded.end(g_mark).joules["package-0"] == pytest.approx(1.8)
    # without intermediate reads two of the three wraps are invisible
    assert unguarded.end(u_mark).joules["package-0"] == pytest.approx(0.8)


def test_permission_denied_is_unavailable_with_path(tmp_path, monkeypatch):
    """Running as root ignores chmod 000, so the open itself is made to fail as in containers."""
    FakePowercap(tmp_path)
    real_open = rapl_module._open_counter

    def denied(path):
        if path.endswith("energy_uj"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path)

    monkeypatch.setattr(rapl_module, "_open_counter", denied)
    with pytest.raises(MeterUnavailable) as info:
        RaplMeter(str(tmp_path))
    assert str(info.value).startswith(
        f"RAPL counters unreadable: permission denied on {tmp_path}/intel-rapl:0/energy_uj"
    )


def test_unreadable_counter_file(tmp_path):
    tree = FakePowercap(tmp_path, dram=False)
    path = tree.counter_path("package-0")
    path.unlink()
    path.mkdir()  # a directory where the counter should be: open works, read fails
    with pytest.raises(MeterUnavailable, match=f"RAPL counters unreadable: {path}: Is a directory"):
        RaplMeter(str(tmp_path))


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(MeterUnavailable, match="powercap root .*/nowhere does not exist"):
        RaplMeter(str(tmp_path / "nowhere"))
    with pytest.raises(MeterUnavailable, match=r"no package zones \(intel-rapl:N\) under"):
        RaplMeter(str(tmp_path))


def test_read_failure_mid_window_is_meter_error(tmp_path, meters):
    tree = FakePowercap(tmp_path, dram=False)
    meter = meters(str(tmp_path))
    mark = meter.begin()
    tree.counter_path("package-0").write_text("garbage\n")
    with pytest.raises(MeterError, match="RAPL read failed"):
        meter.end(mark)


def test_info_and_close(tmp_path):
    FakePowercap(tmp_path, max_range_uj=65_000_000_000)
    meter = RaplMeter(str(tmp_path))
    meter.begin()
    guard = meter._guard
    info = meter.info()
    assert info["root"] == str(tmp_path) and info["wrap_guard_s"] == 10.0
    assert [(z["domain"], z["max_energy_range_uj"]) for z in info["zones"]] == [
        ("package-0", 65_000_000_000),
        ("dram-0", 65_000_000_000),
    ]
    assert info["zones"][1]["path"] == os.path.join(str(tmp_path), "intel-rapl:0", "intel-rapl:0:1")
    meter.close()
    assert not guard.is_alive()
    assert meter.domains() == ["package-0", "dram-0"] and meter.info()["zones"]
    with pytest.raises(MeterError, match="closed"):
        meter.begin()
