"""``energy-bench compare`` / ``report``: every format, --fail, --history, bad files and arguments."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from energy_bench.cli import main

MACHINE = "Linux-CPython-3.11-64bit"


def bench(fullname, joules, accuracy=0.9, rounds=5, meter="nvml-counter", source="measured"):
    values = [joules * (1 + 0.01 * (i - rounds // 2)) for i in range(rounds)]
    energy = {
        "joules": {"mean": sum(values) / rounds, "stddev": joules * 0.01, "rounds": rounds, "data": values},
        "seconds": {"mean": joules / 100, "stddev": 0.0, "rounds": rounds, "data": [v / 100 for v in values]},
        "mean_watts": 100.0,
        "source": source,
        "meter": meter,
        "domains": {"gpu0": joules},
    }
    return {
        "name": fullname,
        "fullname": fullname,
        "stats": {"mean": joules / 100, "rounds": rounds},
        "extra_info": {"energy": energy, "accuracy": accuracy},
    }


def save(root, number, commit, benches, when):
    folder = root / MACHINE
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "machine_info": {},
        "commit_info": {"id": commit, "time": when},
        "benchmarks": benches,
        "datetime": when,
        "version": "5.3.1",
    }
    path = folder / f"{number:04d}_{commit}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def storage(tmp_path):
    save(tmp_path, 1, "aaa111", [bench("t.py::small", 100), bench("t.py::big", 1000)], "2026-11-01T00:00:00")
    save(
        tmp_path,
        2,
        "bbb222",
        [bench("t.py::small", 100.5), bench("t.py::big", 1300, accuracy=0.85)],
        "2026-11-02T00:00:00",
    )
    return tmp_path


def run(capsys, *args):
    code = main(["compare", "--machine-id", MACHINE, *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_table_default_last_two(storage, capsys):
    code, out, err = run(capsys, "--storage", str(storage))
    assert code == 0 and err == ""
    assert "t.py::big" in out and "0001_aaa111" in out and "0002_bbb222" in out
    assert "1.300" in out and "REGRESSION" in out and "(not gating;" in out


def test_fail_exits_one_naming_the_benchmark(storage, capsys):
    code, out, _ = run(capsys, "--storage", f"file://{storage}", "--fail", "joules:5%")
    assert code == 1
    assert "t.py::big: joules 1000 J -> 1300 J (+30.0%), limit joules:5%" in out
    code, _, _ = run(capsys, "--storage", str(storage), "--fail", "joules:50%")
    assert code == 0


def test_markdown_for_a_pull_request(storage, capsys):
    code, out, _ = run(capsys, "--storage", str(storage), "--format", "markdown", "--fail", "joules:5%,accuracy:1pt")
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "## Energy comparison"
    assert lines[2].startswith("**2 regression(s) in 0002_bbb222 vs 0001_aaa111")
    table = [line for line in lines if line.startswith("|")]
    assert table[0].startswith("| benchmark") and set(table[1]) <= set("|-: ")
    assert len(table) == 2 + 4  # header, rule, 2 benchmarks x 2 runs
    assert any("`t.py::big`" in row and "-5.00pt" in row and "REGRESSION" in row for row in table)


def test_csv(storage, capsys):
    code, out, _ = run(capsys, "--storage", str(storage), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(rows) == 4
    big = next(r for r in rows if r["benchmark"] == "t.py::big" and r["run"] == "0002_bbb222")
    assert float(big["joules_ratio"]) == pytest.approx(1.3)
    assert float(big["accuracy_change_pt"]) == pytest.approx(-5)


def test_json(storage, capsys):
    code, out, _ = run(capsys, "--storage", str(storage), "--format", "json", "--fail", "joules:5%")
    data = json.loads(out)
    assert code == 1 and data["baseline"] == "0001_aaa111" and data["gating"] is True
    assert data["thresholds"] == ["joules:5%"] and len(data["regressions"]) == 1
    small = next(r for r in data["rows"] if r["benchmark"] == "t.py::small" and r["run"] == "0002_bbb222")
    assert small["verdict"] == "ok" and small["joules_ratio"] == pytest.approx(1.005)
    big = next(r for r in data["rows"] if r["benchmark"] == "t.py::big" and r["run"] == "0002_bbb222")
    assert big["joules_p"] == pytest.approx(1 / 252) and big["verdict"] == "REGRESSION"


def test_runs_by_number_path_and_commit(storage, capsys):
    path = storage / MACHINE / "0002_bbb222.json"
    for args in (["2", "1"], [str(path), "aaa1"], ["bbb", "0001"]):
        code, out, err = run(capsys, "--storage", str(storage), "--format", "json", *args)
        assert code == 0 and err == ""
        assert len(json.loads(out)["runs"]) == 2


def test_history_in_commit_order(storage, capsys):
    save(storage, 3, "ccc333", [bench("t.py::big", 900)], "2026-10-01T00:00:00")  # older commit, saved later
    code, out, _ = run(capsys, "--storage", str(storage), "--history", "--format", "json")
    rows = [r for r in json.loads(out)["rows"] if r["benchmark"] == "t.py::big"]
    assert code == 0 and [r["run"] for r in rows] == ["0003_ccc333", "0001_aaa111", "0002_bbb222"]
    assert rows[2]["joules_vs_previous_pct"] == pytest.approx(30)
    for fmt in ("table", "markdown", "csv"):
        code, out, _ = run(capsys, "--storage", str(storage), "--history", "--format", fmt)
        assert code == 0 and "ccc333" in out


def test_bad_files_reported_by_name_and_skipped(storage, capsys):
    folder = storage / MACHINE
    (folder / "0003_truncated.json").write_text('{"benchmarks": [')
    (folder / "0004_foreign.json").write_text('{"something": "else"}')
    save(storage, 5, "ddd444", [bench("t.py::big", 1000)], "2026-11-03T00:00:00")
    code, out, err = run(capsys, "--storage", str(storage), "--format", "json")
    assert code == 0
    assert (
        "0003_truncated.json: truncated or invalid JSON" in err and "0004_foreign.json: not a pytest-benchmark" in err
    )
    assert "Traceback" not in err
    assert json.loads(out)["runs"] == ["0002_bbb222", "0005_ddd444"]


def test_old_file_compares_with_note(storage, capsys):
    old = {"name": "t.py::big", "fullname": "t.py::big", "stats": {"mean": 10.0, "rounds": 5}}
    path = storage / "old.json"
    path.write_text(json.dumps({"machine_info": {}, "commit_info": {}, "benchmarks": [old]}))
    code, out, _ = run(capsys, "--storage", str(storage), str(path), "2", "--fail", "time:5%")
    assert code == 1  # 10 s -> 13 s, decided by the threshold alone
    assert "saved without energy-bench" in out and "threshold only" in out
    assert "t.py::big: time 10 s -> 13 s (+30.0%), limit time:5%, threshold only" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fail", "joules:5"], "cannot parse 'joules:5'"),
        (["--fail", "watts:5%"], "unknown metric 'watts'"),
        (["--format", "xml"], "invalid choice: 'xml'"),
        (["--alpha", "2"], "must be between 0 and 1"),
        (["7"], "no run number 0007"),
        (["nothing.json"], "no such file: nothing.json"),
        (["--storage", "elasticsearch+http://h/i"], "only file:// storage"),
    ],
)
def test_bad_arguments_exit_2(storage, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--machine-id", MACHINE, "--storage", str(storage), *args])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and "Traceback" not in err


def test_too_few_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--machine-id", MACHINE, "--storage", str(tmp_path)])
    assert info.value.code == 2 and "need two readable runs" in capsys.readouterr().err


def test_measured_vs_estimated_refused_unless_forced(storage, capsys):
    save(storage, 3, "est", [bench("t.py::big", 1000, meter="estimate", source="estimated")], "2026-11-03T00:00:00")
    with pytest.raises(SystemExit) as info:
        main(["compare", "--machine-id", MACHINE, "--storage", str(storage), "1", "3"])
    assert info.value.code == 2 and "measured (nvml-counter)" in capsys.readouterr().err
    code, out, _ = run(capsys, "--storage", str(storage), "1", "3", "--force")
    assert code == 0 and "0003_est" in out


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_report(storage, capsys, fmt):
    code = main(["report", "--machine-id", MACHINE, "--storage", str(storage), "--format", fmt])
    out = capsys.readouterr().out
    assert code == 0 and "t.py::big" in out and "1300" in out


def test_fetch_weights_delegates_to_the_study(monkeypatch, capsys):
    from energy_bench.study import weights, zoo

    asked = []
    monkeypatch.setattr(
        weights, "fetch_weights", lambda names: asked.append(list(names)) or [f"/cache/{n}.pth" for n in names]
    )
    assert main(["fetch-weights", "resnet18"]) == 0
    assert capsys.readouterr().out == "/cache/resnet18.pth\n"
    assert main(["fetch-weights"]) == 0 and asked[-1] == list(zoo.MODEL_NAMES)


def test_fetch_weights_error_is_one_line(monkeypatch, capsys):
    from energy_bench.study import weights

    def offline(names):
        raise OSError("no network: <urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(weights, "fetch_weights", offline)
    assert main(["fetch-weights", "resnet18"]) == 1
    assert capsys.readouterr().err.startswith("energy-bench fetch-weights: no network")


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2 and "COMMAND" in capsys.readouterr().err


# ---------------------------------------------------------------------------- hostile and unlucky files

ODD_NAME = "t.py::odd[a|b\n`c`\r]"


def markdown_cells(line):
    """The cells of a GitHub table row, split the way GitHub splits them (an escaped pipe stays inside)."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_odd_names_stay_in_their_cell(tmp_path, capsys):
    save(tmp_path, 1, "aaa", [bench(ODD_NAME, 100)], "2026-11-01T00:00:00")
    save(tmp_path, 2, "bbb", [bench(ODD_NAME, 130)], "2026-11-02T00:00:00")
    code, out, _ = run(capsys, "--storage", str(tmp_path), "--format", "markdown", "--fail", "joules:5%")
    assert code == 1
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert len(rows) == 4 and len({len(markdown_cells(row)) for row in rows}) == 1
    assert markdown_cells(rows[2])[0] == "``t.py::odd[a\\|b\\n`c`\\r]``"
    assert "- t.py::odd[a|b\\n`c`\\r]: joules 100 J -> 130 J (+30.0%)" in out
    code, out, _ = run(capsys, "--storage", str(tmp_path), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [r["benchmark"] for r in rows] == [ODD_NAME, ODD_NAME] and rows[1]["joules_ratio"] == "1.3"
    code, out, _ = run(capsys, "--storage", str(tmp_path), "--format", "json")
    assert {r["benchmark"] for r in json.loads(out)["rows"]} == {ODD_NAME}
    code, out, _ = run(capsys, "--storage", str(tmp_path), "--format", "table")
    assert "t.py::odd[a|b\\n`c`\\r]\n" in out and ODD_NAME not in out
    for fmt in ("markdown", "table"):
        code, out, _ = run(capsys, "--storage", str(tmp_path), "--history", "--format", fmt)
        assert code == 0 and ODD_NAME not in out and "t.py::odd[a" in out


def test_zero_and_negative_baselines(tmp_path, capsys):
    save(tmp_path, 1, "aaa", [bench("t.py::z", 0.0)], "2026-11-01T00:00:00")
    save(tmp_path, 2, "bbb", [bench("t.py::z", 5.0)], "2026-11-02T00:00:00")
    code, out, _ = run(capsys, "--storage", str(tmp_path), "--format", "json", "--fail", "joules:5%")
    data = json.loads(out)
    assert code == 1 and data["regressions"] == ["t.py::z: joules 0 J -> 5 J (+5 J, n/a%), limit joules:5%, p=0.00397"]
    assert [r["joules_ratio"] for r in data["rows"]] == [None, None]
    for fmt in ("table", "markdown", "csv"):
        code, out, _ = run(capsys, "--storage", str(tmp_path), "--format", fmt, "--fail", "joules:5%")
        assert code == 1 and not re.search(r"(?i)\b(nan|inf|infinity)\b", out)
    code, out, _ = run(capsys, "--storage", str(tmp_path), "--history", "--format", "json")
    assert [r["joules_vs_first_pct"] for r in json.loads(out)["rows"]] == [None, None]
    code, out, _ = run(capsys, "--storage", str(tmp_path), "--history", "--format", "table")
    assert out.count("+5 J, n/a%") == 2  # vs first and vs previous of the second run


def test_non_finite_values_are_named_not_mistaken_for_old_files(tmp_path, capsys):
    path = save(tmp_path, 1, "aaa", [bench("t.py::a", 100)], "2026-11-01T00:00:00")
    path.write_text(path.read_text().replace('"mean": 100.0', '"mean": NaN').replace('"data": [98.0', '"data": [NaN'))
    save(tmp_path, 2, "bbb", [bench("t.py::a", 100)], "2026-11-02T00:00:00")
    code, out, err = run(capsys, "--storage", str(tmp_path), "--format", "json", "--fail", "joules:5%")
    data = json.loads(out)
    assert code == 0 and err == ""
    assert data["notes"] == ["0001_aaa: t.py::a: no joules data ('joules': a per-round value is not a finite number)"]
    current = data["rows"][1]
    assert current["verdict"] == "no data" and "joules: no data in the baseline" in current["notes"]


def test_hostile_files_skipped_by_name(storage, capsys):
    folder = storage / MACHINE
    (folder / "0003_deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "0004_binary.json").write_bytes(b"\x00\xff\xfe{")
    code, out, err = run(capsys, "--storage", str(storage), "--format", "json")
    assert code == 0 and json.loads(out)["runs"] == ["0001_aaa111", "0002_bbb222"]
    assert "0003_deep.json: nested too deeply to be a run" in err and "0004_binary.json: cannot read" in err
    code, out, err = run(capsys, "--storage", str(storage), "--history", "--format", "csv")
    assert code == 0 and "0003_deep.json" in err


def test_machine_info_of_the_wrong_type(storage, capsys):
    path = save(storage, 3, "ccc333", [bench("t.py::big", 1000)], "2026-11-03T00:00:00")
    data = json.loads(path.read_text())
    data["machine_info"] = {"energy": {"gpus": 5, "devices": "x", "parts": {"a": 1}}}
    path.write_text(json.dumps(data))
    code, _, _ = run(capsys, "--storage", str(storage), "2", "3", "--force")
    assert code == 0
    code, _, _ = run(capsys, "--storage", str(storage), "2", "3", "--fail", "joules:5%")
    assert code == 0  # the other run names no device: nothing to tell apart
    save(storage, 4, "ddd444", [bench("t.py::big", 1000)], "2026-11-04T00:00:00")
    other = json.loads((storage / MACHINE / "0004_ddd444.json").read_text())
    other["machine_info"] = {"energy": {"gpus": [{"name": "H100"}]}}
    (storage / MACHINE / "0004_ddd444.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit) as info:
        main(["compare", "--machine-id", MACHINE, "--storage", str(storage), "3", "4"])
    assert info.value.code == 2 and "unreadable gpus (int)" in capsys.readouterr().err
