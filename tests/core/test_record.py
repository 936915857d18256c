"""The energy record built from meter readings (extra_info.energy) and the metric checks."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest

from energy_bench.meters import window
from energy_bench.meters.base import Meter, Reading, Source
from energy_bench.runs import record as records


def reading(joules: dict[str, float], seconds: float, source=Source.MEASURED, meter="fake", warnings=()) -> Reading:
    return Reading(joules, seconds, source, meter, tuple(warnings))


class FakeMeter(Meter):
    """Constant power per domain against a fake clock that the test advances."""

    name = "fake"

    def __init__(self, watts: dict[str, float]):
        self.watts = watts
        self.now = 0.0

    def begin(self) -> float:
        return self.now

    def end(self, mark: float) -> Reading:
        seconds = self.now - mark
        return reading({d: w * seconds for d, w in self.watts.items()}, seconds)


def test_samples_matches_pytest_benchmark_shape() -> None:
    s = records.samples([3, 1, 2, 10])
    assert s == {
        "mean": 4.0,
        "median": 2.5,
        "min": 1.0,
        "max": 10.0,
        "stddev": pytest.approx(4.0824829),
        "rounds": 4,
        "data": [3.0, 1.0, 2.0, 10.0],
    }
    assert records.samples([5])["stddev"] == 0.0
    with pytest.raises(ValueError):
        records.samples([])


def test_record_totals_domains_and_watts() -> None:
    readings = [reading({"gpu0": 10.0, "package-0": 2.0}, 1.0), reading({"gpu0": 14.0, "package-0": 4.0}, 2.0)]
    record = records.energy_record(readings)
    assert record["joules"]["data"] == [12.0, 18.0]
    assert record["seconds"]["data"] == [1.0, 2.0]
    assert record["mean_watts"] == pytest.approx(30.0 / 3.0)
    assert record["domains"] == {"gpu0": 12.0, "package-0": 3.0}
    assert record["source"] == "measured" and record["meter"] == "fake"
    assert "net_joules" not in record and "warnings" not in record
    assert json.loads(json.dumps(record)) == record  # plain JSON values only


def test_net_joules_subtract_idle_watts_times_each_rounds_seconds() -> None:
    readings = [reading({"gpu0": 10.0, "cpu": 2.0}, 1.0), reading({"gpu0": 30.0, "cpu": 2.0}, 2.0)]
    record = records.energy_record(readings, {"gpu0": 3.0, "cpu": 0.5, "gpu1": 100.0})
    # gpu1 was not in the readings: its idle watts are not subtracted
    assert record["net_joules"]["data"] == pytest.approx([12.0 - 3.5, 32.0 - 7.0])
    assert record["joules"]["data"] == [12.0, 32.0]  # gross is kept as it was
    assert record["idle_watts"] == 3.5


def test_net_joules_may_be_negative_rather_than_silently_clamped() -> None:
    record = records.energy_record([reading({"cpu": 1.0}, 1.0)], {"cpu": 2.0})
    assert record["net_joules"]["data"] == [-1.0]


def test_any_estimated_window_makes_the_record_estimated_and_warnings_are_kept_once() -> None:
    readings = [
        reading({"cpu": 1.0}, 1.0, warnings=["short"]),
        reading({"cpu": 1.0}, 1.0, source=Source.ESTIMATED, warnings=["short", "other"]),
    ]
    record = records.energy_record(readings)
    assert record["source"] == "estimated"
    assert record["warnings"] == ["short", "other"]


def test_failed_record() -> None:
    assert records.failed_record("GPU is lost", FakeMeter({})) == {
        "error": "GPU is lost",
        "meter": "fake",
        "source": "measured",
    }


@pytest.mark.parametrize("value, expected", [(0.93, 0.93), (1, 1.0), (0, 0.0), (Fraction(1, 2), 0.5)])
def test_accuracy_is_a_fraction(value, expected) -> None:
    assert records.plain_metric("accuracy", value) == expected
    assert type(records.plain_metric("accuracy", value)) is float


@pytest.mark.parametrize(
    "value, error",
    [
        (93.0, ValueError),
        (-0.1, ValueError),
        (math.nan, ValueError),
        ("0.9", TypeError),
        (True, TypeError),
    ],
)
def test_bad_accuracy(value, error) -> None:
    with pytest.raises(error, match="accuracy"):
        records.plain_metric("accuracy", value)


def test_other_metrics_become_plain_values() -> None:
    np = pytest.importorskip("numpy")
    assert type(records.plain_metric("loss", np.float32(0.5))) is float
    assert type(records.plain_metric("epochs", np.int64(3))) is int
    assert records.plain_metric("loss", np.array([0.25])) == 0.25
    assert records.plain_metric("note", "fine") == "fine"
    assert records.plain_metric("flag", None) is None
    with pytest.raises(TypeError, match="loss must be a number"):
        records.plain_metric("loss", [1, 2])
    with pytest.raises(ValueError, match="finite"):
        records.plain_metric("loss", math.inf)
    with pytest.raises(ValueError, match="reserved"):
        records.plain_metric("energy", 1.0)


def test_idle_watts_per_domain(monkeypatch: pytest.MonkeyPatch) -> None:
    meter = FakeMeter({"gpu0": 50.0, "cpu": 5.0})

    def sleep(seconds: float) -> None:
        meter.now += seconds

    monkeypatch.setattr(window.time, "sleep", sleep)
    assert window.idle_watts(meter, 2.0) == {"gpu0": 50.0, "cpu": 5.0}


def test_synchronize_without_torch_imports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    window.synchronize_devices()
    assert "torch" not in sys.modules


def test_synchronize_waits_for_every_started_cuda_device(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    synced = []
    cuda = types.SimpleNamespace(is_initialized=lambda: True, device_count=lambda: 2, synchronize=synced.append)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    window.synchronize_devices()
    assert synced == [0, 1]
    cuda.is_initialized = lambda: False
    window.synchronize_devices()
    assert synced == [0, 1]
