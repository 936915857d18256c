"""``energy-bench report``: the ranking in text, and --html figures (what was drawn, not only that files exist)."""

from __future__ import annotations

import builtins
import json

import pytest

from energy_bench.cli import main
from energy_bench.meters.base import Reading, Source
from energy_bench.runs import ranking
from energy_bench.runs import record as records

MACHINE = "Linux-CPython-3.11-64bit"


def trained(model, compressor, round_joules, accuracies, target, cap=6, source=Source.ESTIMATED):
    """A study training benchmark as energy(until=energy.target(...)) records it: stops at the first round met."""
    met = [i for i, a in enumerate(accuracies) if a >= target]
    end = met[0] + 1 if met else len(accuracies)
    reads = [Reading({"cpu": j}, j / 20, source, "estimate") for j in round_joules[:end]]
    record = records.energy_record(reads)
    describe = {"metric": "accuracy", "target": target, "direction": "at_least"}
    record["to_target"] = records.target_record(reads, bool(met), cap, describe, accuracies[:end])
    return {
        "name": f"test_train[{model}-{compressor}]",
        "fullname": f"benchmarks/test_compression.py::test_train[{model}-{compressor}]",
        "group": model,
        "param": f"{model}-{compressor}",
        "extra_info": {"energy": record, "accuracy": accuracies[end - 1], "model": model, "compressor": compressor},
    }


def inference(model, compressor, joules, accuracy):
    reads = [Reading({"cpu": j}, 0.5, Source.ESTIMATED, "estimate") for j in joules]
    return {
        "name": f"test_inference[{model}-{compressor}]",
        "fullname": f"benchmarks/test_compression.py::test_inference[{model}-{compressor}]",
        "group": f"{model}-inference",
        "param": f"{model}-{compressor}",
        "extra_info": {
            "energy": records.energy_record(reads),
            "accuracy": accuracy,
            "model": model,
            "compressor": compressor,
        },
    }


def study_run() -> list[dict]:
    base = trained("resnet18", "baseline", [10.0, 10.0, 10.0], [0.90, 0.95, 0.95], target=9.0, cap=3)
    record = base["extra_info"]["energy"]
    target = {"metric": "accuracy", "target": 0.94, "direction": "at_least"}
    record["to_target"] = records.target_from_curve(record["to_target"]["curve"], target, 3)
    return [
        base,  # 20 J to 0.94 (its second round)
        trained("resnet18", "stego", [10.0, 10.0], [0.93, 0.945], target=0.94),  # 20 J
        trained("resnet18", "prune-structured", [5.0] * 3, [0.80, 0.90, 0.96], target=0.94),  # 15 J
        trained("resnet18", "lowrank", [7.0] * 6, [0.5, 0.6, 0.7, 0.75, 0.8, 0.82], target=0.94),  # not reached
        inference("resnet18", "baseline", [2.0, 2.0, 2.1], 0.95),
        inference("resnet18", "prune-structured", [1.0, 1.1, 1.0], 0.80),
    ]


@pytest.fixture
def saved(tmp_path):
    folder = tmp_path / MACHINE
    folder.mkdir()
    data = {
        "machine_info": {"energy": {"carbon": {"intensity_g_per_kwh": 300.0, "source": "test grid"}}},
        "commit_info": {"id": "abc123", "time": "2026-11-01T00:00:00"},
        "benchmarks": study_run(),
        "datetime": "2026-11-01T00:00:00",
        "version": "5.3.1",
    }
    path = folder / "0001_abc123.json"
    path.write_text(json.dumps(data))
    return path


def test_text_report_appends_the_ranking_and_its_summary(saved, capsys) -> None:
    assert main(["report", str(saved)]) == 0
    out = capsys.readouterr().out
    assert "resnet18: joules to accuracy >= 94.00%" in out
    assert "Saved energy at equal accuracy on this hardware: prune-structured (1 of 1); did not: stego, lowrank." in out
    assert "- lowrank: saved energy on none of 1 model; did not reach the target on 1 (resnet18 82.00% after 6" in out
    assert "resnet18-inference: joules per call" in out
    assert out.rstrip().endswith("CO2e at 300.0 gCO2e/kWh (source: test grid).")  # the factors it was saved with
    data = json.loads(main(["report", str(saved), "--format", "json"]) == 0 and capsys.readouterr().out)
    verdicts = {(row["group"], row["variant"]): row["verdict"] for row in data["ranking"]["rows"]}
    assert verdicts[("resnet18", "lowrank")] == "not reached"
    assert verdicts[("resnet18-inference", "prune-structured")] == "saved"
    assert data["ranking"]["summary"][0].startswith("At equal accuracy")
    assert data["factors"] == ["CO2e at 300.0 gCO2e/kWh (source: test grid)."]


def test_html_page_and_figure_files(saved, tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "page"
    assert main(["report", str(saved), "--html", str(out)]) == 0
    page = (out / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') == 5  # 2 ratio figures, 2 Pareto figures, 1 curve figure
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "CO2e at 300.0 gCO2e/kWh (source: test grid)." in page
    assert "Saved energy at equal accuracy on this hardware" in page
    names = sorted(p.name for p in out.iterdir())
    for stem in ("ratio-to-target", "ratio-per-call", "pareto-resnet18", "pareto-resnet18-inference", "curve-resnet18"):
        assert f"{stem}.png" in names and f"{stem}.svg" in names
        assert (out / f"{stem}.png").read_bytes().startswith(b"\x89PNG")
        assert "<svg" in (out / f"{stem}.svg").read_text()[:500]
    assert "wrote" in capsys.readouterr().err


def _series(ax):
    """label -> number of points, for the scatter collections and lines of an Axes."""
    found = {c.get_label(): len(c.get_offsets()) for c in ax.collections}
    found |= {line.get_label(): len(line.get_xdata()) for line in ax.get_lines()}
    return found


def test_pareto_figure_draws_every_variant_and_the_front() -> None:
    pytest.importorskip("matplotlib")
    from energy_bench.runs import report

    train, infer = ranking.rank(study_run())
    ax = report.pareto_figure(train).axes[0]
    series = _series(ax)
    assert series["reached the target"] == 3 and series["not reached (joules of all its rounds)"] == 1
    front = next(line for line in ax.get_lines() if line.get_label() == "Pareto front")
    # prune-structured (15 J, 0.96) dominates stego and the baseline (20 J, 0.945 and 0.95)
    assert list(front.get_xdata()) == [15.0] and list(front.get_ydata()) == [0.96]
    assert ax.get_xlabel() == "joules to target (J, estimated)" and ax.get_ylabel() == "accuracy"
    assert ax.get_title() == "resnet18: energy and accuracy\n(estimated energy, not measured)"
    assert {t.get_text() for t in ax.texts} == {"baseline", "stego", "prune-structured", "lowrank"}
    ax = report.pareto_figure(infer).axes[0]
    assert _series(ax)["variant"] == 2 and ax.get_xlabel() == "joules per call (J, estimated)"


def test_pareto_front_keeps_only_undominated_points() -> None:
    from energy_bench.runs.report import pareto_front

    points = [(10.0, 0.9), (5.0, 0.8), (12.0, 0.95), (11.0, 0.85), (5.0, 0.7), (20.0, 0.95)]
    assert pareto_front(points) == [1, 0, 2]
    assert pareto_front([]) == [] and pareto_front([(1.0, 0.5)]) == [0]


def test_ratio_figure_has_one_bar_per_group_and_marks_missed_targets() -> None:
    pytest.importorskip("matplotlib")
    from energy_bench.runs import report

    rankings = ranking.rank(study_run())
    ax = report.ratio_figure(rankings, ranking.TO_TARGET).axes[0]
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers}
    assert bars["stego"] == [pytest.approx(1.0)] and bars["prune-structured"] == [pytest.approx(0.75)]
    assert bars["lowrank"] == []
    assert _series(ax)["lowrank: not reached"] == 1
    assert ax.get_ylabel() == "joules to target / baseline's (estimated)"
    assert ax.get_title().startswith("Energy to baseline's accuracy, relative to baseline")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["resnet18"]
    per_call = report.ratio_figure(rankings, ranking.PER_CALL).axes[0]
    assert [p.get_height() for c in per_call.containers for p in c.patches] == [pytest.approx(3.1 / 6.1)]


def test_curve_figure_plots_accuracy_against_cumulative_joules() -> None:
    pytest.importorskip("matplotlib")
    from energy_bench.runs import report

    train, infer = ranking.rank(study_run())
    ax = report.curve_figure(train).axes[0]
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}
    assert lines["baseline"] == ([10.0, 20.0, 30.0], [0.90, 0.95, 0.95])  # its whole fixed run
    assert lines["prune-structured"] == ([5.0, 10.0, 15.0], [0.80, 0.90, 0.96])
    assert len(lines["lowrank"][0]) == 6 and "target 0.940" in lines
    assert ax.get_xlabel() == "cumulative joules (J, estimated)" and ax.get_ylabel() == "accuracy"
    assert report.curve_figure(infer) is None


def test_measured_figures_say_nothing_about_estimates() -> None:
    pytest.importorskip("matplotlib")
    from energy_bench.runs import report

    run = [
        trained("m", "baseline", [4.0, 4.0], [0.9, 0.9], target=0.89, source=Source.MEASURED),
        trained("m", "prune", [2.0, 2.0], [0.9, 0.9], target=0.89, source=Source.MEASURED),
    ]
    (group,) = ranking.rank(run)
    ax = report.pareto_figure(group).axes[0]
    assert ax.get_xlabel() == "joules to target (J)" and "estimated" not in ax.get_title()


def test_html_without_matplotlib_is_a_clear_error(saved, tmp_path, monkeypatch, capsys) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["report", str(saved), "--html", str(tmp_path / "page")]) == 2
    err = capsys.readouterr().err
    assert "figures need matplotlib" in err and "[plot]" in err
    assert not (tmp_path / "page").exists()


def test_report_of_a_missing_run_is_a_usage_error(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", str(tmp_path / "nope.json")])
    assert exc.value.code == 2 and "no such file" in capsys.readouterr().err


def test_pareto_labels_of_close_points_do_not_overlap() -> None:
    """baseline and stego sit at nearly the same joules and accuracy on densenet121 and resnet18 (study-1)."""
    pytest.importorskip("matplotlib")
    import json
    from pathlib import Path

    from energy_bench.runs import report

    data = json.loads((Path(__file__).parents[2] / "docs" / "data" / "study-1.json").read_text())
    groups = {g.group: g for g in ranking.rank(data["benchmarks"])}
    for name in ("densenet121", "resnet18", "densenet121-inference", "resnet18-inference"):
        fig = report.pareto_figure(groups[name])
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        texts = fig.axes[0].texts
        assert {t.get_text() for t in texts} == {r.entry.variant for r in groups[name].ranked}
        boxes = [t.get_window_extent(renderer) for t in texts]
        overlapping = [
            (texts[i].get_text(), texts[j].get_text())
            for i in range(len(boxes))
            for j in range(i + 1, len(boxes))
            if boxes[i].overlaps(boxes[j])
        ]
        assert overlapping == [], name
