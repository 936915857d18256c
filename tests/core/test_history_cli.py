"""``energy-bench history``: show (the default sub-command) prints a planted change point in every format, accept
stops it being reported as open, and bad arguments are usage errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from energy_bench.cli import main
from tests.browser.history import saved_run, write_run

BENCH = "t.py::test_loop"
OTHER = "t.py::test_other"
#: the first commit whose loop does 20 % more work
PLANTED = 12


def commit(i: int) -> str:
    return f"{i + 1:040x}"


@pytest.fixture
def storage(tmp_path):
    """Twenty commits, one saved run each, 1 % noise; BENCH 20 % heavier from commit PLANTED on, OTHER flat."""
    root = tmp_path / "storage"
    noise = 1 + 0.01 * np.random.default_rng(3).standard_normal((20, 2))
    for i in range(20):
        level = 1.2 if i >= PLANTED else 1.0
        runs = {BENCH: [level * noise[i, 0]] * 3, OTHER: [noise[i, 1]] * 3}
        when = f"2026-03-01T00:{i:02d}:00+00:00"
        write_run(root, "m1", i + 1, saved_run(runs, commit=commit(i), time=when, branch="main"))
    assert main(["history", "import", str(root), "-s", str(root)]) == 0
    return root


def history(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["history", *args])
    return code, capsys.readouterr().out


def test_history_alone_is_show_and_names_the_commit_range(storage, capsys) -> None:
    code, out = history(capsys, "-s", str(storage))
    assert code == 0
    (row,) = [line for line in out.splitlines() if BENCH in line]
    assert f"{commit(PLANTED - 1)[:8]}..{commit(PLANTED)[:8]}" in row
    assert "regression" in row and "open" in row
    assert "1 open change point(s) in 2 series (40 runs in all)" in out
    assert history(capsys, "show", "-s", str(storage)) == (code, out)


def test_pattern_metric_and_formats(storage, capsys) -> None:
    code, out = history(capsys, "other", "-s", str(storage), "--format", "json")
    assert code == 0
    (entry,) = json.loads(out)
    assert entry["benchmark"] == OTHER and entry["changes"] == []
    code, out = history(capsys, BENCH, "-s", str(storage), "--format", "json", "--series")
    (entry,) = json.loads(out)
    (change,) = entry["changes"]
    assert change["after_commit"] == commit(PLANTED) and change["direction"] == "regression"
    assert change["low"] < change["change"] < change["high"]
    assert len(entry["points"]) == 20
    code, out = history(capsys, BENCH, "-s", str(storage), "--format", "markdown")
    assert out.startswith("| benchmark") and "regression" in out
    # the saved rounds last in proportion to their joules (tests/browser/history.py): time steps at the same commit
    code, out = history(capsys, "--metric", "time", "-s", str(storage))
    (row,) = [line for line in out.splitlines() if BENCH in line]
    assert f"..{commit(PLANTED)[:8]}" in row and " time " in row
    assert "1 open change point(s) in 2 series" in out


def test_an_accepted_change_is_shown_but_not_open(storage, tmp_path, capsys) -> None:
    marks = tmp_path / "accepted.toml"
    args = ["-s", str(storage), "--accepted", str(marks)]
    code, out = history(capsys, "accept", BENCH, commit(PLANTED)[:10], "--reason", "a bigger loop", "--accepted",
                        str(marks))  # fmt: skip
    assert code == 0 and "a bigger loop" in out
    code, out = history(capsys, *args)
    (row,) = [line for line in out.splitlines() if BENCH in line]
    assert row.rstrip().endswith("accepted")
    assert "0 open change point(s)" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--metric", "watts"], "invalid choice: 'watts'"),
        (["--min-change", "lots"], "expected a percentage"),
        (["--alpha", "2"], "expected a level between 0 and 1"),
        (["accept", BENCH, "abc"], "--reason"),
    ],
)
def test_bad_arguments_are_usage_errors(storage, capsys, args, message) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["history", *args, "-s", str(storage)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
