"""Round-start GPU temperatures and the cooldown between rounds, with a fake NVML whose GPUs cool on a fake clock."""

from __future__ import annotations

import json
import math
import sys

import pytest

from energy_bench.meters import EstimateMeter, NvmlMeter, Reading, Source
from energy_bench.meters.cooldown import RoundTemperatures
from energy_bench.runs.record import energy_record
from tests.fakes.fake_pynvml import FakeClock, FakeGpu, FakeNvml


class Thermal:
    """Newton cooling towards ``ambient`` with time constant ``tau``; ``heat(d)`` adds ``d`` degrees now."""

    def __init__(self, clock: FakeClock, start: float = 50.0, ambient: float = 40.0, tau: float = 20.0):
        self.clock, self.ambient, self.tau = clock, ambient, tau
        self.value, self.since = start, clock()

    def __call__(self, _elapsed: float) -> float:
        return self.ambient + (self.value - self.ambient) * math.exp(-(self.clock() - self.since) / self.tau)

    def heat(self, degrees: float) -> None:
        self.value, self.since = self(0) + degrees, self.clock()


@pytest.fixture
def gpus(monkeypatch):
    """Two GPUs, both cooling on one fake clock: (meter, clock, thermals)."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    clock = FakeClock()
    thermals = [Thermal(clock, start=50.0), Thermal(clock, start=45.0)]
    fake = FakeNvml([FakeGpu(temperature=t) for t in thermals], clock=clock)
    monkeypatch.setitem(sys.modules, "pynvml", fake.module)
    meter = NvmlMeter(clock=clock)
    yield meter, clock, thermals
    meter.close()


def rounds(callback: RoundTemperatures, thermals: list[Thermal], heats: list[float]) -> None:
    """Round i starts (callback), then heats every GPU by heats[i] degrees."""
    for index, degrees in enumerate(heats):
        callback(index)
        for thermal in thermals:
            thermal.heat(degrees)


def test_waits_until_every_gpu_is_back_within_the_margin(gpus):
    meter, clock, thermals = gpus
    cooldown = RoundTemperatures(meter, margin_c=3.0, timeout_s=60.0, clock=clock, sleep=clock.advance)
    rounds(cooldown, thermals, [10.0, 10.0, 0.0])
    # NVML reads whole degrees. gpu0 (60 °C) reads 53 once 40 + 20 exp(-t/20) < 54, from t = 7.1 s; gpu1 (55 °C)
    # reads 48 once 40 + 15 exp(-t/20) < 49, from t = 10.2 s: the slower GPU decides, seen at the 0.5 s poll after
    assert cooldown.waits[0] == 0.0
    assert cooldown.waits[1] == pytest.approx(10.5) and cooldown.waits[2] > 0
    assert cooldown.timed_out == []
    temps = cooldown.record()
    assert temps["gpu0"][0] == 50.0 and temps["gpu1"][0] == 45.0
    assert all(t <= 53.0 for t in temps["gpu0"]) and all(t <= 48.0 for t in temps["gpu1"])
    assert cooldown.cooldown_record() == {
        "margin_c": 3.0,
        "timeout_s": 60.0,
        "waited_s": cooldown.waits,
        "timeouts": [],
    }


def test_gives_up_at_the_timeout_and_notes_the_round(gpus):
    meter, clock, thermals = gpus
    cooldown = RoundTemperatures(meter, margin_c=1.0, timeout_s=2.0, clock=clock, sleep=clock.advance)
    rounds(cooldown, thermals, [15.0, 0.0])
    assert cooldown.waits == [0.0, pytest.approx(2.0)]
    assert cooldown.timed_out == [1]
    assert cooldown.record()["gpu0"][1] > 51.0  # the round started still too warm, and the record shows it


def test_without_a_margin_temperatures_are_recorded_but_nothing_waits(gpus):
    meter, clock, thermals = gpus
    sleeps = []
    recorder = RoundTemperatures(meter, clock=clock, sleep=sleeps.append)
    rounds(recorder, thermals, [10.0, 10.0, 10.0])
    assert sleeps == [] and recorder.waits == [0.0, 0.0, 0.0]
    assert recorder.record()["gpu0"] == [50.0, 60.0, 70.0]
    assert recorder.cooldown_record() is None


def test_a_meter_without_temperatures_records_nothing_and_never_waits():
    sleeps = []
    cooldown = RoundTemperatures(EstimateMeter(), margin_c=1.0, sleep=sleeps.append)
    for index in range(3):
        cooldown(index)
    assert sleeps == [] and cooldown.record() is None and cooldown.cooldown_record() is None


def test_the_record_carries_temperatures_and_cooldown():
    readings = [Reading({"gpu0": 10.0}, 1.0, Source.MEASURED, "nvml-counter")] * 2
    record = energy_record(
        readings,
        temperatures={"gpu0": [50, 52.5]},
        cooldown={"margin_c": 3, "timeout_s": 60, "waited_s": [0, 4.5], "timeouts": []},
    )
    assert record["temperatures_c"] == {"gpu0": [50.0, 52.5]}
    assert record["cooldown"] == {"margin_c": 3.0, "timeout_s": 60.0, "waited_s": [0.0, 4.5], "timeouts": []}
    json.dumps(record)  # plain JSON
    plain = energy_record(readings, temperatures=None, cooldown=None)
    assert "temperatures_c" not in plain and "cooldown" not in plain


COOLDOWN_CONFTEST = """
    import sys

    import pytest

    from tests.fakes.fake_pynvml import FakeGpu, FakeNvml

    GPU = FakeGpu(temperature=40.0)
    sys.modules["pynvml"] = FakeNvml([GPU]).module


    @pytest.fixture
    def fake_gpu():
        return GPU
"""

COOLDOWN_TEST = """
    def test_heats(energy, fake_gpu):
        def work():  # every call warms the GPU by 5 degrees; it never cools
            fake_gpu.temperature += 5

        energy(work, rounds=3, warmup_rounds=0, iterations=1)
"""


def test_energy_records_temperatures_and_cooldown_end_to_end(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    pytester.makeconftest(COOLDOWN_CONFTEST)
    pytester.makepyfile(test_cool=COOLDOWN_TEST)
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--energy-meter=nvml",
        "--energy-cooldown=2",
        "--energy-cooldown-timeout=0.05",
        "--benchmark-json=out.json",
        "-W",
        "ignore::energy_bench.errors.EnergyBenchWarning",
    )
    result.assert_outcomes(passed=1)
    energy = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"]["energy"]
    assert energy["temperatures_c"] == {"gpu0": [40.0, 45.0, 50.0]}
    cooldown = energy["cooldown"]
    assert (cooldown["margin_c"], cooldown["timeout_s"], cooldown["timeouts"]) == (2.0, 0.05, [1, 2])
    assert cooldown["waited_s"][0] == 0.0 and all(w >= 0.05 for w in cooldown["waited_s"][1:])


@pytest.mark.parametrize(
    "args, message",
    [
        (("--energy-cooldown=0",), "ERROR: --energy-cooldown: '0' must be greater than 0 and at most 100"),
        (("--energy-cooldown=warm",), "ERROR: --energy-cooldown: 'warm' is not a number"),
        (("--energy-cooldown=nan",), "ERROR: --energy-cooldown: 'nan' must be a finite number"),
        (
            ("--energy-cooldown-timeout=-1",),
            "ERROR: --energy-cooldown-timeout: '-1' must be at least 0 and at most 3600",
        ),
        (("--energy-cooldown-timeout=inf",), "ERROR: --energy-cooldown-timeout: 'inf' must be a finite number"),
    ],
)
def test_bad_cooldown_options_are_usage_errors(pytester: pytest.Pytester, args, message) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
