"""The terminal energy table."""

from __future__ import annotations

from types import SimpleNamespace

from energy_bench.meters import EstimateMeter
from energy_bench.meters.base import Reading, Source
from energy_bench.plugin import table
from energy_bench.runs import record as records
from energy_bench.runs.text import format_duration


def bench(name: str, extra_info: dict, mean: float = 0.1) -> SimpleNamespace:
    return SimpleNamespace(
        name=name, fullname=f"test_x.py::{name}", stats=SimpleNamespace(mean=mean), extra_info=extra_info
    )


def record(joules: list[float], source=Source.MEASURED, idle=None) -> dict:
    readings = [Reading({"gpu0": j}, 0.5, source, "nvml-counter") for j in joules]
    return records.energy_record(readings, idle)


def test_rows_with_accuracy_and_no_net_column() -> None:
    headers, rows, estimated = table.energy_rows(
        [
            bench("test_a", {"energy": record([10.0, 12.0]), "accuracy": 0.9312}),
            bench("test_plain", {}),  # a plain benchmark has no energy row
        ]
    )
    assert headers == ["name", "time (mean)", "energy (J/call, mean +- stddev)", "power (W)", "accuracy", "source"]
    assert rows == [["test_a", "100 ms", "11 +- 1.414", "22", "93.12%", "measured"]]
    assert not estimated


def test_net_column_estimated_marks_and_failed_rows() -> None:
    benches = [
        bench("test_net", {"energy": record([10.0], idle={"gpu0": 4.0})}, mean=0.5),
        bench("test_est", {"energy": record([3.0], source=Source.ESTIMATED)}, mean=2.0),
        bench("test_bad", {"energy": {"error": "GPU is lost", "meter": "nvml-counter", "source": "measured"}}),
    ]
    headers, rows, estimated = table.energy_rows(benches)
    assert headers[2:4] == ["energy (J/call, mean +- stddev)", "net energy (J/call)"]
    assert rows[0][1:5] == ["500 ms", "10 +- 0", "8", "20"]  # net = 10 J - 4 W x 0.5 s
    assert rows[1][1:5] == ["2 s", "~3 +- 0", "", "~6"]  # estimated values carry the mark
    assert rows[2][2:6] == ["failed: GPU is lost", "", "", ""]
    assert estimated
    lines = table.energy_table_lines(benches, estimate=EstimateMeter(12.5).model.label())
    assert lines[-1] == "~ estimated, not measured: CPU time x 12.5 W per vCPU (set by the user; no bounds)"
    assert table.energy_table_lines(benches)[-1] == "~ estimated, not measured"
    assert lines[0].split()[:2] == ["name", "time"]


def test_comparison_columns_are_appended_in_order() -> None:
    benches = [bench("test_a", {"energy": record([10.0])}), bench("test_b", {"energy": record([20.0])})]
    comparison = {"test_x.py::test_a": {"baseline J": "9", "change": "+11.1%", "verdict": "REGRESSION"}}
    headers, rows, _ = table.energy_rows(benches, comparison)
    assert headers[-3:] == ["baseline J", "change", "verdict"]
    assert rows[0][-3:] == ["9", "+11.1%", "REGRESSION"]
    assert rows[1][-3:] == ["", "", ""]


def test_nothing_measured_prints_nothing() -> None:
    assert table.energy_table_lines([bench("test_plain", {})]) == []


def test_format_duration() -> None:
    assert [format_duration(v) for v in (2.5, 0.1, 2.5e-5, 3e-9)] == ["2.5 s", "100 ms", "25 us", "3 ns"]
