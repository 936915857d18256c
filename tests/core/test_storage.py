"""Loading saved runs: storage folders, run numbers, commits, old and broken files."""

from __future__ import annotations

import json

import pytest

from energy_bench.runs.storage import (
    RunLoadError,
    RunNotFound,
    Storage,
    load_run_file,
    load_runs,
    run_from_json,
    storage_path,
)

MACHINE = "Linux-CPython-3.11-64bit"


def bench_json(
    fullname,
    joules=100.0,
    rounds=5,
    accuracy=0.9,
    energy=True,
    data=True,
    seconds=True,
    source="measured",
    meter="nvml-counter",
):
    values = [joules * (1 + 0.01 * (i - rounds // 2)) for i in range(rounds)]
    stats = {"mean": 1.0, "stddev": 0.01, "rounds": rounds, "min": 0.99, "max": 1.01}
    entry = {"name": fullname.split("::")[-1], "fullname": fullname, "stats": stats, "extra_info": {}}
    if energy:
        joules_stats = {
            "mean": sum(values) / rounds,
            "median": values[rounds // 2],
            "min": min(values),
            "max": max(values),
            "stddev": joules * 0.01,
            "rounds": rounds,
        }
        if data:
            joules_stats["data"] = values
        record = {
            "joules": joules_stats,
            "mean_watts": 50.0,
            "source": source,
            "meter": meter,
            "domains": {"gpu0": joules},
        }
        if seconds:
            record["seconds"] = {
                "mean": 1.0,
                "stddev": 0.01,
                "rounds": rounds,
                **({"data": [1.0 + 0.001 * i for i in range(rounds)]} if data else {}),
            }
        entry["extra_info"]["energy"] = record
    if accuracy is not None:
        entry["extra_info"]["accuracy"] = accuracy
    return entry


def run_json(benches, commit="abc1234", when="2026-11-28T10:00:00+00:00", commit_time=None, devices=None):
    machine = {"node": "host", "energy": {"meter": "nvml-counter", **({"devices": devices} if devices else {})}}
    return {
        "machine_info": machine,
        "commit_info": {"id": commit, "time": commit_time or when, "dirty": False},
        "benchmarks": benches,
        "datetime": when,
        "version": "5.3.1",
    }


def save(root, number, name, data, machine=MACHINE):
    folder = root / machine
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{number:04d}_{name}.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_full_record_loads(tmp_path):
    path = save(tmp_path, 1, "abc", run_json([bench_json("t.py::a", joules=200)], devices=["H100"]))
    run = load_run_file(path)
    assert run.label == "0001_abc" and run.number == 1 and run.commit_id == "abc1234"
    rec = run.benchmarks["t.py::a"]
    assert rec.joules.mean == pytest.approx(200) and len(rec.joules.data) == 5
    assert rec.time.data and rec.accuracy == 0.9 and rec.source == "measured" and rec.meter == "nvml-counter"
    assert run.machine_energy["devices"] == ["H100"]
    assert run.notes == []


def test_old_file_without_extra_info_loads_with_note(tmp_path):
    bench = bench_json("t.py::a", energy=False, accuracy=None)
    del bench["extra_info"]
    run = load_run_file(save(tmp_path, 1, "old", run_json([bench])))
    rec = run.benchmarks["t.py::a"]
    assert rec.joules is None and rec.time.mean == 1.0 and rec.time.data is None
    assert "no energy record" in rec.notes[0]
    assert any("saved without energy-bench" in n for n in run.notes)


def test_file_without_per_round_data_says_threshold_only(tmp_path):
    run = load_run_file(save(tmp_path, 1, "x", run_json([bench_json("t.py::a", data=False)])))
    assert run.benchmarks["t.py::a"].joules.data is None
    assert run.notes == ["0001_x: no per-round data for 1 benchmark(s): threshold only"]


def test_time_falls_back_to_benchmark_stats(tmp_path):
    bench = bench_json("t.py::a", seconds=False)
    bench["stats"]["data"] = [2.0, 2.1, 1.9]
    rec = load_run_file(save(tmp_path, 1, "x", run_json([bench]))).benchmarks["t.py::a"]
    assert rec.time.data == (2.0, 2.1, 1.9)


@pytest.mark.parametrize(
    "content, reason",
    [
        ('{"benchmarks": [{"fullname": "a", ', "truncated or invalid JSON"),
        ("", "truncated or invalid JSON"),
        ('{"hello": 1}', "not a pytest-benchmark run"),
        ("[1, 2]", "not a pytest-benchmark run"),
        ('{"benchmarks": [{"name": "no fullname"}]}', "a benchmark without 'fullname'"),
    ],
)
def test_bad_files_named(tmp_path, content, reason):
    path = save(tmp_path, 1, "bad", content)
    with pytest.raises(RunLoadError) as info:
        load_run_file(path)
    assert str(info.value).startswith(str(path)) and reason in str(info.value)


def test_unreadable_and_binary_files(tmp_path):
    with pytest.raises(RunLoadError, match="cannot read"):
        load_run_file(tmp_path / "nope.json")
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RunLoadError, match="bin.json"):
        load_run_file(binary)


def test_load_runs_skips_and_reports(tmp_path):
    good = save(tmp_path, 1, "good", run_json([bench_json("a")]))
    bad = save(tmp_path, 2, "bad", "{")
    errors = []
    runs = load_runs([good, bad], errors.append)
    assert [r.label for r in runs] == ["0001_good"]
    assert len(errors) == 1 and str(bad) in errors[0]


def test_storage_find(tmp_path):
    storage = Storage(tmp_path, MACHINE)
    with pytest.raises(RunNotFound, match="no saved run in"):
        storage.find("latest")
    first = save(tmp_path, 1, "aaaa111", run_json([bench_json("a")], commit="aaaa1112222"))
    second = save(tmp_path, 2, "named", run_json([bench_json("a")], commit="bbbb3334444"))
    save(tmp_path, 9, "other-machine", run_json([]), machine="Other")
    assert storage.run_files() == [first, second]
    assert storage.find("latest") == second
    assert storage.find("1") == first and storage.find("0002") == second
    assert storage.find("aaaa") == first  # commit prefix in the file name
    assert storage.find("bbbb333") == second  # commit prefix from commit_info
    assert storage.find("0002_na") == second  # file name prefix
    assert storage.find(str(first)) == first
    with pytest.raises(RunNotFound, match="no run number 0007"):
        storage.find("7")
    with pytest.raises(RunNotFound, match="no such file"):
        storage.find("missing.json")
    with pytest.raises(RunNotFound, match="matching 'zzz'"):
        storage.find("zzz")


def test_storage_path():
    assert str(storage_path("file://./x")) == "x"
    assert str(storage_path(None)) == ".benchmarks"
    with pytest.raises(ValueError, match="only file://"):
        storage_path("elasticsearch+http://host/index")


def test_run_from_json_order_key():
    early = run_from_json(run_json([], when="2026-01-02T00:00:00", commit_time="2026-01-01T00:00:00"), "e")
    late = run_from_json(run_json([], when="2026-01-01T12:00:00", commit_time="2026-01-01T06:00:00"), "l")
    assert sorted([late, early], key=lambda r: r.order_key)[0] is early
