"""Pooled baselines on disk: ``last:N`` lookups, the pooled view, and ``energy-bench compare --baseline``."""

from __future__ import annotations

import json

import pytest

from energy_bench.cli import main
from energy_bench.meters.base import Reading, Source
from energy_bench.runs import record as records
from energy_bench.runs.parse import load_run_file
from energy_bench.runs.pool import pooled_run
from energy_bench.runs.store.files import RunSpecError, Storage, parse_last

MACHINE = "Linux-CPython-3.11-64bit"


def entry(fullname, joules, accuracy=0.9, rounds=5, target=None):
    """One benchmark as pytest-benchmark saves it, with the record the harness builds."""
    values = [joules * (1 + 0.005 * (i - rounds // 2)) for i in range(rounds)]
    readings = [Reading({"gpu0": v}, v / 100, Source.MEASURED, "nvml-counter") for v in values]
    energy = records.energy_record(readings)
    if target is not None:
        reached, used = target
        energy["to_target"] = records.target_record(readings[:1] * used, reached, 20)
    return {
        "name": fullname,
        "fullname": fullname,
        "stats": {"mean": joules / 100, "rounds": rounds},
        "extra_info": {"energy": energy, "accuracy": accuracy},
    }


def save(root, number, benches, machine=MACHINE):
    folder = root / machine
    folder.mkdir(parents=True, exist_ok=True)
    when = f"2026-11-{number:02d}T00:00:00"
    data = {"machine_info": {}, "commit_info": {"id": f"c{number}", "time": when}, "benchmarks": benches}
    path = folder / f"{number:04d}_c{number}.json"
    path.write_text(json.dumps({**data, "datetime": when}))
    return path


SESSIONS = (1.00, 1.06, 0.97, 1.03, 0.99)  # run-to-run speed of five unchanged sessions


@pytest.fixture
def storage(tmp_path):
    for number, speed in enumerate(SESSIONS, start=1):
        save(tmp_path, number, [entry("t.py::a", 100 * speed), entry("t.py::b", 10 * speed)])
    return tmp_path


def test_parse_last():
    assert parse_last("last:5") == 5 and parse_last("latest") is None and parse_last("7") is None
    for bad in ("last:0", "last:", "last:x", "last:-1", "last:1234567", "last:٣"):
        with pytest.raises(RunSpecError, match="expected last:N"):
            parse_last(bad)


def test_load_last(storage):
    store = Storage(storage, MACHINE)
    assert [r.label for r in store.load_last(3, print)] == ["0003_c3", "0004_c4", "0005_c5"]
    assert len(store.load_last(50, print)) == 5
    before = store.folder / "0004_c4.json"
    assert [r.label for r in store.load_last(2, print, before=before)] == ["0002_c2", "0003_c3"]
    (store.folder / "0006_broken.json").write_text("{")
    errors = []
    assert [r.label for r in store.load_last(2, errors.append)] == ["0004_c4", "0005_c5"]  # still two
    assert len(errors) == 1 and "0006_broken.json" in errors[0]
    outside = storage / "elsewhere.json"
    outside.write_text((store.folder / "0005_c5.json").read_text())
    assert len(store.load_last(9, print, before=outside)) == 5


def test_pooled_run_shows_means_of_runs(storage):
    runs = Storage(storage, MACHINE).load_last(5, print)
    pooled = pooled_run(runs)
    assert pooled.label == "5 runs (0001_c1..0005_c5)"
    a = pooled.benchmarks["t.py::a"]
    assert a.joules.mean == pytest.approx(100 * sum(SESSIONS) / 5)
    assert a.joules.rounds == 25 and a.joules.data is None and a.accuracy == pytest.approx(0.9)
    assert pooled_run(runs[:1]) is runs[0]


def test_pooled_target(tmp_path):
    paths = [save(tmp_path, n, [entry("t.py::a", 100, target=(reached, 7))]) for n, reached in ((1, True), (2, False))]
    target = pooled_run([load_run_file(p) for p in paths]).benchmarks["t.py::a"].to_target
    assert not target.reached and target.joules == pytest.approx(7 * 99)  # the first round of each costs 99 J


def compare(capsys, storage, *args):
    code = main(["compare", "--machine-id", MACHINE, "--storage", str(storage), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_unchanged_session_inside_the_spread_passes(storage, capsys):
    save(storage, 6, [entry("t.py::a", 105), entry("t.py::b", 10.5)])  # 5% slower session, within the spread
    code, out, _ = compare(capsys, storage, "--baseline", "last:5", "--fail", "joules:3%")
    assert code == 0, out
    assert "No regressions in 0006_c6 vs 5 runs (0001_c1..0005_c5) (joules:3%; between-run Student t" in out
    code, out, _ = compare(capsys, storage, "5", "6", "--fail", "joules:3%")  # one saved run: the rounds test
    assert code == 1 and "between-run noise unknown (one baseline run)" in out


def test_heavier_run_fails_with_the_between_run_line(storage, capsys):
    save(storage, 6, [entry("t.py::a", 130), entry("t.py::b", 10.0)])
    code, out, _ = compare(capsys, storage, "last:5", "--fail", "joules:10%", "--format", "markdown")
    assert code == 1
    lines = out.splitlines()
    assert lines[2].startswith("**1 regression(s) in 0006_c6 vs 5 runs (0001_c1..0005_c5)")
    assert "- t.py::a: joules 101 J -> 130 J (+28.7%), limit joules:10%, p=" in out
    assert "(between-run t, 5 baseline runs, bound 10" in out
    assert any(line.startswith("| `t.py::a`") and "| 5 runs (0001_c1..0005_c5) | 101 " in line for line in lines)


def test_baseline_before_a_given_run_and_fewer_than_asked(storage, capsys):
    code, out, _ = compare(capsys, storage, "--baseline", "last:9", "4", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["runs"] == ["3 runs (0001_c1..0003_c3)", "0004_c4"]
    assert data["baseline_runs"] == 3 and "over 3 baseline runs" in data["test"]
    assert data["notes"] == ["last:9: only 3 readable run(s) saved before 0004_c4; pooled those"]


def test_baseline_as_one_run(storage, capsys):
    code, out, _ = compare(capsys, storage, "--baseline", "1", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["runs"] == ["0001_c1", "0005_c5"] and data["baseline_runs"] == 1


def test_joules_to_target_in_the_tables(tmp_path, capsys):
    for number, used in ((1, 7), (2, 7), (3, 8), (4, 7)):
        save(tmp_path, number, [entry("t.py::a", 100, target=(True, used))])
    save(tmp_path, 5, [entry("t.py::a", 100, target=(False, 20))])
    code, out, _ = compare(capsys, tmp_path, "last:4", "--fail", "joules_to_target:10%", "--format", "markdown")
    assert code == 1
    assert "- t.py::a: joules_to_target: target not reached in 20 rounds (baseline reached it with 717.8 J)" in out
    header = next(line for line in out.splitlines() if line.startswith("| benchmark"))
    assert "target" in header and "J to target" in header
    assert "not reached (20 rounds)" in out
    code, out, _ = compare(capsys, tmp_path, "1", "3", "--format", "csv")
    assert "joules_to_target_ratio" in out.splitlines()[0] and ",reached (8 rounds),792," in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--baseline", "last:0"], "expected last:N"),
        (["--baseline", "last:2", "last:3"], "two baselines"),
        (["--baseline", "last:2", "--history"], "do not apply to --history"),
        (["--baseline", "last:2", "1"], "no readable run saved before 0001_c1"),
        (["--baseline", "9"], "no run number 0009"),
    ],
)
def test_bad_baselines_exit_2(storage, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--machine-id", MACHINE, "--storage", str(storage), *args])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err
