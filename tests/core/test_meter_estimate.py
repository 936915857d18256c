"""Estimate meter: CPU seconds of this process, its threads and its children x watts."""

from __future__ import annotations

import multiprocessing
import resource
import threading

import pytest

from energy_bench.meters import EstimateMeter, Source
from energy_bench.meters.estimate import descendants, proc_cpu_seconds, process_tree_cpu_seconds
from tests.fakes import burn_cpu, child_burner
from tests.fakes.fake_pynvml import FakeClock

BURN_S = 0.3
TICK_SLACK_S = 0.05  # /proc counts in 10 ms ticks; plus this process's own bookkeeping


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def reaped_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def test_joules_are_cpu_seconds_times_watts():
    clock, samples = FakeClock(), iter([12.0, 14.5])
    meter = EstimateMeter(25.0, clock=clock, cpu_seconds=lambda: next(samples))
    mark = meter.begin()
    clock.advance(3.0)
    reading = meter.end(mark)
    assert reading.joules == {"cpu": 2.5 * 25.0}
    assert (reading.seconds, reading.source, reading.meter) == (3.0, Source.ESTIMATED, "estimate")


def test_never_negative():
    samples = iter([5.0, 4.0])  # a child that escaped with its time
    meter = EstimateMeter(cpu_seconds=lambda: next(samples))
    assert meter.end(meter.begin()).joules["cpu"] == 0.0


def test_real_burn_in_main_and_other_thread():
    meter = EstimateMeter(10.0)
    before = own_cpu()
    mark = meter.begin()
    burn_cpu(0.1)
    worker = threading.Thread(target=burn_cpu, args=(0.1,))
    worker.start()
    worker.join()
    reading = meter.end(mark)
    used = own_cpu() - before
    cpu_s = reading.joules["cpu"] / 10.0
    assert cpu_s > 0.15
    assert cpu_s == pytest.approx(used, abs=TICK_SLACK_S)


@pytest.fixture
def child():
    """A spawned child that burns BURN_S of CPU on request, then waits to be told to leave."""
    ctx = multiprocessing.get_context("spawn")
    events = [ctx.Event() for _ in range(4)]
    ready, go, done, leave = events
    proc = ctx.Process(target=child_burner, args=(ready, go, done, leave, BURN_S))
    proc.start()
    assert ready.wait(120), "child did not start"
    yield proc, go, done, leave
    leave.set()
    proc.join(10)
    if proc.is_alive():
        proc.kill()


def test_live_child_cpu_is_counted(child):
    """The window holds the child's burn and not its start-up, however long either takes on this machine: the
    expectation is what the test itself reads from /proc around the window."""
    proc, go, done, _leave = child
    assert proc.pid in descendants(multiprocessing.current_process().pid)
    meter = EstimateMeter(10.0)
    own, started = own_cpu(), proc_cpu_seconds(proc.pid)  # the child's start-up: before the window
    mark = meter.begin()
    go.set()
    assert done.wait(60)
    reading = meter.end(mark)  # the child is still alive: its time comes from /proc
    expected = (own_cpu() - own) + (proc_cpu_seconds(proc.pid) - started)
    cpu_s = reading.joules["cpu"] / 10.0
    assert cpu_s >= BURN_S - TICK_SLACK_S
    assert cpu_s == pytest.approx(expected, abs=TICK_SLACK_S)


def test_child_that_ends_and_is_reaped_is_counted(child):
    """Reaped inside the window: the child's whole time (with its interpreter's shutdown, longer on a slower
    machine) moves to RUSAGE_CHILDREN, and the window keeps only what came after begin()."""
    proc, go, done, leave = child
    meter = EstimateMeter(10.0)
    own, reaped, started = own_cpu(), reaped_cpu(), proc_cpu_seconds(proc.pid)
    mark = meter.begin()
    go.set()
    assert done.wait(60)
    leave.set()
    proc.join(60)
    assert not proc.is_alive()
    reading = meter.end(mark)
    expected = (own_cpu() - own) + (reaped_cpu() - reaped) - started
    cpu_s = reading.joules["cpu"] / 10.0
    assert cpu_s >= BURN_S - TICK_SLACK_S
    assert cpu_s == pytest.approx(expected, abs=TICK_SLACK_S)


def test_process_tree_cpu_grows():
    first = process_tree_cpu_seconds()
    burn_cpu(0.05)
    assert process_tree_cpu_seconds() > first


def test_info_and_bad_watts():
    info = EstimateMeter().info()  # this machine's CPU, whichever it is: the record says what was matched
    assert info["cpu_watts"] == info["estimate"]["watts_per_cpu_second"] > 0
    assert info["cpu_watts_basis"] == info["estimate"]["label"] and "W per vCPU" in info["cpu_watts_basis"]
    assert info["estimate"]["match"] in ("cpuinfo", "name", "proxy", "default")
    assert info["cpu_count"] >= 1 and info["source"] == "estimated" and "cpu_model" in info
    user = EstimateMeter(7).info()
    assert user["cpu_watts_basis"] == "CPU time x 7 W per vCPU (set by the user; no bounds)"
    assert user["estimate"]["match"] == "user" and "lower_watts_per_cpu_second" not in user["estimate"]
    assert EstimateMeter().domains() == ["cpu"]
    with pytest.raises(ValueError, match="cpu_watts must be positive"):
        EstimateMeter(0)
