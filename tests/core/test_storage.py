"""Loading saved runs: storage folders, run numbers, commits, old and broken files."""

from __future__ import annotations

import json
import math

import pytest

from energy_bench.runs import parse as parse_module
from energy_bench.runs.parse import RunLoadError, load_run_file, load_runs, run_from_json
from energy_bench.runs.store.files import RunNotFound, Storage, storage_path

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


# ---------------------------------------------------------------------------- values a file must not be trusted with


def one_bench(tmp_path, mutate, name="bad"):
    """Load a run of one benchmark after ``mutate(entry)`` changed its saved JSON entry."""
    entry = bench_json("t.py::a")
    mutate(entry)
    return load_run_file(save(tmp_path, 1, name, json.dumps(run_json([entry])))).benchmarks["t.py::a"]


def energy_of(entry):
    return entry["extra_info"]["energy"]


@pytest.mark.parametrize(
    "mutate, metric, reason",
    [
        (lambda e: energy_of(e)["joules"]["data"].__setitem__(0, math.nan), "joules", "not a finite number"),
        (lambda e: energy_of(e)["joules"].update(mean=math.inf, data=None), "joules", "'mean' is not a finite number"),
        (lambda e: energy_of(e)["joules"].update(mean=-5.0, data=None), "joules", "'mean' -5 is outside 0..1e+15"),
        (lambda e: energy_of(e)["joules"].update(mean="100"), "joules", "'mean' is a str, not a number"),
        (lambda e: energy_of(e)["joules"].update(data="1,2,3"), "joules", "'data' is a str, not a list"),
        (lambda e: energy_of(e)["joules"].update(data=[1.0, None]), "joules", "a per-round value is None"),
        (lambda e: energy_of(e)["joules"].update(data=None, rounds=-3), "joules", "'rounds' is -3, not a whole"),
        (lambda e: energy_of(e)["joules"].update(data=None, rounds=True), "joules", "'rounds' is True"),
        (lambda e: energy_of(e)["joules"].update(stddev=-1.0), "joules", "'stddev' -1 is outside 0.."),
        (lambda e: energy_of(e).update(joules=[1, 2]), "joules", "the summary is a list, not an object"),
        (lambda e: energy_of(e).update(iterations=0), "joules", "'iterations' is 0, not a whole number"),
        (lambda e: energy_of(e).update(iterations=10**400), "time", "'iterations' is a huge integer"),
        (lambda e: energy_of(e)["seconds"].update(mean=-1.0, data=None), "time", "'mean' -1 is outside 0.."),
        (lambda e: e["extra_info"].update(accuracy=5.0), "accuracy", "accuracy 5 is outside 0..1"),
        (lambda e: e["extra_info"].update(accuracy=math.nan), "accuracy", "accuracy is not a finite number"),
        (lambda e: e["extra_info"].update(accuracy="93%"), "accuracy", "accuracy is a str, not a number"),
        (lambda e: e["extra_info"].update(accuracy=True), "accuracy", "accuracy is True, not a number"),
    ],
)
def test_unusable_values_are_named_and_leave_no_data(tmp_path, mutate, metric, reason):
    rec = one_bench(tmp_path, mutate)
    assert rec.samples(metric) is None
    assert reason in rec.invalid[metric]
    run = load_run_file(tmp_path / MACHINE / "0001_bad.json")
    (note,) = [n for n in run.notes if f"no {metric} data" in n]
    assert note.startswith(f"0001_bad: t.py::a: no {metric} data (") and reason in note
    assert not any("saved without energy-bench" in n for n in run.notes)
    for word in ("nan", "inf"):  # a note never shows a non-finite value as if it were a number
        assert word not in note.lower().replace("finite", "")


def test_nan_and_infinity_tokens_in_the_file(tmp_path):
    entry = bench_json("t.py::a")
    text = json.dumps(run_json([entry])).replace('"mean_watts": 50.0', '"mean_watts": NaN')
    text = text.replace('"accuracy": 0.9', '"accuracy": Infinity')
    rec = load_run_file(save(tmp_path, 1, "tokens", text)).benchmarks["t.py::a"]
    assert rec.joules is not None  # mean_watts is not compared: no harm done
    assert rec.accuracy is None and "not a finite number" in rec.invalid["accuracy"]


def test_negative_net_joules_are_valid(tmp_path):
    rec = one_bench(
        tmp_path, lambda e: energy_of(e).update(net_joules={"mean": -4.0, "rounds": 3, "data": [-5, -4, -3]})
    )
    assert rec.net_joules.mean == -4.0 and rec.invalid == {}


def test_mean_comes_from_per_round_data(tmp_path):
    rec = one_bench(tmp_path, lambda e: energy_of(e)["joules"].update(mean=1e6, data=[1.0, 2.0, 3.0], rounds=99))
    assert rec.joules.mean == 2.0 and rec.joules.rounds == 3


def test_wrong_types_elsewhere_are_tolerated(tmp_path):
    def mutate(entry):
        energy_of(entry).update(source=["measured"], meter=7, error={"deep": [1]})
        entry["stats"] = "not stats"

    rec = one_bench(tmp_path, mutate)
    assert rec.source == "unreadable (list)" and rec.meter == "unreadable (int)"
    assert rec.error == "meter failed (unreadable reason: a dict)"


def test_unreadable_energy_record_is_not_called_old(tmp_path):
    rec = one_bench(tmp_path, lambda e: e["extra_info"].update(energy="joules"))
    assert rec.notes == ["unreadable energy record (a str)"]


def test_duplicate_names_are_noted(tmp_path):
    run = load_run_file(save(tmp_path, 1, "dup", run_json([bench_json("t.py::a"), bench_json("t.py::a", joules=9)])))
    assert run.benchmarks["t.py::a"].joules.mean == pytest.approx(9)
    assert "0001_dup: t.py::a saved more than once: the last one is used" in run.notes


def test_names_with_control_characters_are_escaped_in_notes(tmp_path):
    entry = bench_json("t.py::a\nFAKE LINE", accuracy=2.0)
    run = load_run_file(save(tmp_path, 1, "ctl", run_json([entry])))
    assert run.benchmarks["t.py::a\nFAKE LINE"].accuracy is None  # the name itself is kept as saved
    assert all("\n" not in note for note in run.notes)
    assert any("t.py::a\\nFAKE LINE" in note for note in run.notes)


@pytest.mark.parametrize(
    "content, reason",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply to be a run"),
        ('{"benchmarks": [' + "9" * 5000 + "]}", "truncated or invalid JSON"),
        ('{"benchmarks": [{"fullname": "a"}]} trailing', "truncated or invalid JSON"),
    ],
)
def test_hostile_files_named(tmp_path, content, reason):
    path = save(tmp_path, 1, "hostile", content)
    with pytest.raises(RunLoadError) as info:
        load_run_file(path)
    assert str(info.value).startswith(str(path)) and reason in str(info.value)
    assert "\n" not in str(info.value)


def test_too_large_file_is_not_read(tmp_path, monkeypatch):
    path = save(tmp_path, 1, "big", run_json([bench_json("a")]))
    monkeypatch.setattr(parse_module, "MAX_RUN_BYTES", 100)
    with pytest.raises(RunLoadError, match=r"0001_big.json: too large to be a run \(\d+ bytes, over 0 MiB\)"):
        load_run_file(path)


def test_find_commit_skips_hostile_files(tmp_path):
    good = save(tmp_path, 1, "good", run_json([bench_json("a")], commit="cafe123"))
    save(tmp_path, 2, "deep", "[" * 100_000 + "]" * 100_000)
    save(tmp_path, 3, "list", json.dumps([{"commit_info": {"id": "cafe"}}]))
    save(tmp_path, 4, "odd", json.dumps({"commit_info": ["cafe"], "benchmarks": []}))
    assert Storage(tmp_path, MACHINE).find("cafe") == good
