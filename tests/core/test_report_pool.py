"""``energy-bench report`` over several saved sessions: verdicts from a t interval over the sessions' ratios, and
refusals of sessions that cannot be pooled."""

from __future__ import annotations

import json
import math

import pytest
from scipy import stats

from energy_bench.cli import main
from energy_bench.meters.base import Source
from energy_bench.runs import ranking
from energy_bench.runs.sessions import NOT_COMPARABLE, ONE_SESSION_NOTE, ONE_SESSION_ONLY, interval, pool_rankings
from tests.core.test_report import MACHINE, inference, trained

CPU = {"brand_raw": "AMD EPYC", "family": 25, "model": 17, "count": 2, "arch": "X86_64"}
#: per model, per compressor: its ratio to the baseline in each of two sessions
RATIOS = {
    "quant": (0.80, 0.82),  # cheaper in both, by about as much: saved
    "prune": (0.80, 1.20),  # cheaper in one, dearer in the other: each session alone has a verdict, together none
    "slow": (1.30, 1.32),  # dearer in both: cost more
}


def per_call_session(session: int, scale: float, ratios=RATIOS, source=Source.ESTIMATED) -> list[dict]:
    """Inference benchmarks whose joules are the same every round (so each session alone calls any ratio != 1 a
    verdict); ``scale`` makes a whole session cheaper or dearer, as a faster or slower session is."""
    benchmarks = [inference("resnet18", "baseline", [2.0 * scale] * 3, 0.95)]
    for name, by_session in ratios.items():
        benchmarks.append(inference("resnet18", name, [2.0 * scale * by_session[session]] * 3, 0.9))
    if source is not Source.ESTIMATED:
        for bench in benchmarks:
            bench["extra_info"]["energy"]["source"] = source.value
            bench["extra_info"]["energy"]["meter"] = "rapl"
    return benchmarks


def save(folder, number: int, benchmarks: list[dict], cpu=CPU, energy=None):
    data = {
        "machine_info": {"node": "vm", "system": "Linux", "machine": "x86_64", "cpu": dict(cpu), "energy": energy},
        "commit_info": {"id": f"c{number}", "time": f"2026-11-0{number}T00:00:00"},
        "benchmarks": benchmarks,
        "datetime": f"2026-11-0{number}T00:00:00",
        "version": "5.3.1",
    }
    path = folder / f"{number:04d}_c{number}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def storage(tmp_path):
    folder = tmp_path / MACHINE
    folder.mkdir()
    save(folder, 1, per_call_session(0, 1.0))
    save(folder, 2, per_call_session(1, 0.9))  # the second session 10 % cheaper throughout
    return tmp_path


def report(storage, *args):
    return main(["report", "--storage", str(storage), "--machine-id", MACHINE, *args])


def expected_interval(ratios, alpha=0.05):
    logs = [math.log(r) for r in ratios]
    result = stats.t.interval(1 - alpha, len(logs) - 1, loc=stats.tmean(logs), scale=stats.sem(logs))
    return math.exp(result[0]), math.exp(result[1])


def test_interval_is_a_t_interval_of_the_log_ratios() -> None:
    ratio, low, high = interval([0.8, 0.82, 0.79])
    assert (low, high) == pytest.approx(expected_interval([0.8, 0.82, 0.79]))
    assert ratio == pytest.approx(math.exp(sum(math.log(r) for r in (0.8, 0.82, 0.79)) / 3))
    assert interval([0.8]) is None
    wider = interval([0.8, 0.82, 0.79], alpha=0.01)
    assert wider[1] < low and wider[2] > high


def test_each_session_alone_has_verdicts_that_pooling_does_not_keep(storage, capsys) -> None:
    assert report(storage, "1", "--format", "json") == 0
    alone = json.loads(capsys.readouterr().out)
    verdicts = {row["variant"]: row["verdict"] for row in alone["ranking"]["rows"]}
    assert verdicts["prune"] == ranking.SAVED and alone["ranking"]["sessions"] == 1
    assert report(storage, "last:2", "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["variant"]: row for row in data["pooled"]["rows"]}
    assert {v: row["verdict"] for v, row in rows.items()} == {
        "quant": ranking.SAVED,
        "prune": ranking.SAME,
        "slow": ranking.COST,
    }
    for name, row in rows.items():
        assert row["n"] == 2 and row["ratios"] == pytest.approx(RATIOS[name])
        assert (row["low"], row["high"]) == pytest.approx(expected_interval(RATIOS[name]))
    assert data["pooled"]["sessions"] == 2 and [s["run"] for s in data["sessions"]] == ["0001_c1", "0002_c2"]
    assert data["pooled"]["summary"][1] == "Cheaper per call across sessions: quant (1 of 1); did not: prune, slow."


def test_text_report_of_several_runs_shows_ratios_n_and_interval(storage, capsys) -> None:
    assert report(storage, "1", "2") == 0
    out = capsys.readouterr().out
    assert "Verdicts across 2 sessions (0001_c1, 0002_c2)" in out
    low, high = expected_interval(RATIOS["quant"])
    quant = next(line for line in out.splitlines() if line.startswith("resnet18-inference  quant"))
    assert "0.800, 0.820" in quant and f"{low:.3f}-{high:.3f}" in quant and quant.rstrip().endswith("saved")
    assert "95% interval" in out and ONE_SESSION_NOTE not in out
    assert report(storage, "last:2", "--format", "markdown") == 0
    assert "## Verdicts across 2 sessions" in capsys.readouterr().out


def test_one_session_says_its_verdicts_rest_on_it(storage, capsys) -> None:
    assert report(storage) == 0
    out = capsys.readouterr().out
    assert ONE_SESSION_NOTE in out and "Verdicts across" not in out
    assert report(storage, "last:5") == 0  # fewer saved than asked: pooled those, and said so
    assert "last:5: only 2 readable saved run(s); pooled those" in capsys.readouterr().err


def test_to_target_pooling_counts_sessions_that_missed_the_target(tmp_path, capsys) -> None:
    folder = tmp_path / MACHINE
    folder.mkdir()
    for number, stego in ((1, [0.93, 0.945]), (2, [0.90, 0.91])):  # stego reaches 0.94 in the first session only
        save(
            folder,
            number,
            [
                trained("resnet18", "baseline", [10.0] * 2, [0.93, 0.95], target=0.94, cap=2),
                trained("resnet18", "stego", [8.0] * 2, stego, target=0.94, cap=2),
                trained("resnet18", "lowrank", [7.0] * 2, [0.5, 0.6], target=0.94, cap=2),
            ],
        )
    assert main(["report", "--storage", str(tmp_path), "--machine-id", MACHINE, "last:2", "--format", "json"]) == 0
    rows = {row["variant"]: row for row in json.loads(capsys.readouterr().out)["pooled"]["rows"]}
    assert rows["stego"]["verdict"] == ONE_SESSION_ONLY and rows["stego"]["n"] == 1
    assert rows["stego"]["not_reached"] == 1 and rows["stego"]["low"] is None
    assert rows["lowrank"]["verdict"] == ranking.NOT_REACHED and rows["lowrank"]["n"] == 0


def test_failed_variants_are_not_comparable_and_groups_without_reference_not_pooled() -> None:
    sessions = [per_call_session(0, 1.0), per_call_session(1, 1.0)]
    for benchmarks in sessions:
        benchmarks[1]["extra_info"]["energy"] = {"error": "meter failed"}  # quant failed in both sessions
    pooled = {p.variant: p for p in pool_rankings([ranking.rank(b) for b in sessions], "baseline")}
    assert pooled["quant"].verdict == NOT_COMPARABLE and pooled["quant"].n == 0
    assert pooled["slow"].verdict == ranking.COST
    no_reference = [ranking.rank(b[1:]) for b in sessions]  # the baseline left out: no group has a reference
    assert pool_rankings(no_reference, "baseline") == []


@pytest.mark.parametrize(
    "change, words",
    [
        ({"cpu": {**CPU, "model": 2, "family": 26}}, "different machines"),
        ({"source": Source.MEASURED}, "baseline energy is estimated (estimate), current is measured (rapl)"),
        (
            {"energy": {"meter": "estimate", "estimate": {"watts_per_cpu_second": 7.0, "label": "other"}}},
            "different estimate models",
        ),
    ],
)
def test_sessions_that_cannot_be_pooled_are_refused(tmp_path, capsys, change, words) -> None:
    folder = tmp_path / MACHINE
    folder.mkdir()
    model = {"meter": "estimate", "estimate": {"watts_per_cpu_second": 10.0, "label": "ten"}}
    save(folder, 1, per_call_session(0, 1.0), energy=model)
    benchmarks = per_call_session(1, 1.0, source=change.get("source", Source.ESTIMATED))
    save(folder, 2, benchmarks, cpu=change.get("cpu", CPU), energy=change.get("energy", model))
    with pytest.raises(SystemExit) as exc:
        main(["report", "--storage", str(tmp_path), "--machine-id", MACHINE, "last:2"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "refusing to pool these sessions" in err and words in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args, words",
    [
        (["1", "last:2"], "is named twice"),
        (["last:0"], "expected last:N"),
        (["1", "2", "--estimate-model", "10", "--save-json", "x.json"], "--save-json writes one recomputed run"),
        (["1", "9"], "no run number 0009"),
    ],
)
def test_bad_run_lists_are_usage_errors(storage, capsys, args, words) -> None:
    with pytest.raises(SystemExit) as exc:
        report(storage, *args)
    assert exc.value.code == 2 and words in capsys.readouterr().err


def test_html_of_pooled_sessions_shows_the_verdicts_across_them(storage, tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "page"
    assert report(storage, "last:2", "--html", str(out)) == 0
    page = (out / "index.html").read_text()
    assert "Verdicts across 2 sessions" in page and "Cheaper per call across sessions: quant" in page
    low, high = expected_interval(RATIOS["slow"])
    assert f"{low:.3f}-{high:.3f}" in page and "newest session" in page
    assert (out / "ratio-per-call.png").read_bytes().startswith(b"\x89PNG")
    assert report(storage, "1", "--html", str(tmp_path / "one")) == 0
    assert "rest on one session" in (tmp_path / "one" / "index.html").read_text()
