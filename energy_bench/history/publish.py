"""``energy-bench publish SITE/``: a static site of the saved history, readable from a file or any static host.

What is written::

    SITE/index.html              every benchmark per machine: latest value, trend, open change points
    SITE/b/<slug>.html           one benchmark over commits: joules and seconds per call, accuracy, joules to target
    SITE/study.html              the study: joules to the baseline's accuracy, as a ratio, per model and compressor
    SITE/data/...json            the same data as plain JSON files, for other tools
    SITE/assets/plotly-basic.min.js   plotly.js's basic bundle (scatter, bar), once (no network at view time)
    SITE/assets/site.js, style.css, LICENSE-plotly.js.txt

Each page carries its own data as a ``<script type="application/json">`` element (browsers refuse to fetch files
beside a page opened from ``file://``), written by :func:`energy_bench.runs.look.script_json`; the script draws it
with DOM text nodes and escaped plot labels only, so no benchmark name or commit text becomes markup.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from energy_bench.errors import EnergyBenchError
from energy_bench.history.changepoints import Change
from energy_bench.history.series import Point, Series, build_series
from energy_bench.runs import ranking
from energy_bench.runs.footprint import saved_footprint
from energy_bench.runs.look import STYLE, page, script_json
from energy_bench.runs.parse import SavedRun

#: metrics drawn on a benchmark's page, in page order, with their axis titles
PAGE_METRICS = {
    "joules": "joules per call (J)",
    "time": "seconds per call (s)",
    "accuracy": "accuracy",
    "joules_to_target": "joules to the target (J, one value per run)",
}
#: how many of the latest points the index's sparkline shows, and how many before the latest its trend compares with
SPARK_POINTS = 30
TREND_WINDOW = 10
#: significant digits kept of each value in the site's data (the saved runs keep full precision)
DIGITS = 6
#: plotly.js shipped inside energy-bench (``vendor/``, with its source, version and MIT license): the basic bundle
#: has the two trace types the site draws, scatter and bar, at a quarter of the full bundle's size, and parsing
#: the script is most of the time a page takes to open
PLOTLY_JS = Path(__file__).parent / "vendor" / "plotly-basic.min.js"
PLOTLY_LICENSE = PLOTLY_JS.with_name("LICENSE-plotly.js.txt")
NO_BRANCH = "(no branch)"
NO_MACHINE = "(no machine)"


class PublishError(EnergyBenchError):
    """The site cannot be written (an unwritable folder, an incomplete install): the message says why."""


@dataclass(frozen=True)
class Published:
    """What :func:`publish` wrote."""

    index: Path
    pages: int  # benchmark pages
    points: int  # plotted values, all metrics
    changes: int  # change points shown
    files: int
    bytes: int


ChangeFinder = Callable[[Series], Sequence[Change]]


def find_changes(series: Series) -> list[Change]:
    """The change points of one series: :func:`energy_bench.history.changepoints.detect` with its defaults.

    The one place the site asks for change points; none while the detector is not installed.
    """
    from energy_bench.history import changepoints

    detect = getattr(changepoints, "detect", None)
    return [] if detect is None else list(detect(series))


# ---------------------------------------------------------------------------- values


def _round(value: float | None) -> float | None:
    """A value fit for JSON: ``DIGITS`` significant digits, None when absent or not finite (an unbounded interval)."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{DIGITS}g}")


def slug(name: str) -> str:
    """A file name for a benchmark: its safe characters, shortened, and a hash of the whole name (unique)."""
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.")[:60]
    return f"{readable}-{digest}" if readable else digest


def _machine(run: SavedRun) -> str:
    return run.machine or NO_MACHINE


def _branch(point_or_run: Point | SavedRun) -> str:
    return point_or_run.branch or NO_BRANCH


def _change_json(change: Change, series: Series, positions: Sequence[int]) -> dict[str, Any]:
    return {
        "machine": series.machine or NO_MACHINE,
        "point": change.index,
        "run": positions[change.index],
        "before_run": positions[change.index - 1] if change.index > 0 else None,
        "before_commit": change.before_commit,
        "after_commit": change.after_commit,
        "direction": change.direction,
        "mean_before": _round(change.mean_before),
        "mean_after": _round(change.mean_after),
        "change": _round(change.change),
        "low": _round(change.low),
        "high": _round(change.high),
        "p_value": change.p_value if math.isfinite(change.p_value) else None,
        "accepted": bool(change.accepted),
    }


# ---------------------------------------------------------------------------- the model of the site


@dataclass
class _History:
    """Every series of every metric, by benchmark, with each run's position in commit order."""

    runs: list[SavedRun]
    #: (benchmark, metric, machine) -> the position in ``runs`` of each point of that series
    positions: dict[tuple[str, str, str | None], list[int]]
    by_benchmark: dict[str, dict[str, list[Series]]]  # benchmark -> metric -> series (one per machine)
    changes: dict[tuple[str, str, str | None], list[Change]]  # (benchmark, metric, machine) -> changes


def _history(runs: Sequence[SavedRun], changes: ChangeFinder) -> _History:
    runs = list(runs)
    history = _History(runs, {}, {}, {})
    for metric in PAGE_METRICS:
        # the same runs build_series takes a point from, in the same order
        for position, run in enumerate(runs):
            for name, record in run.benchmarks.items():
                if record.samples(metric) is not None:
                    history.positions.setdefault((name, metric, run.machine), []).append(position)
        for series in build_series(runs, metric):
            history.by_benchmark.setdefault(series.benchmark, {}).setdefault(metric, []).append(series)
            history.changes[(series.benchmark, metric, series.machine)] = list(changes(series))
    return history


def _positions(history: _History, series: Series) -> list[int]:
    """Each point's run position in commit order."""
    return history.positions[(series.benchmark, series.metric, series.machine)]


def _runs_table(history: _History, used: Iterable[int]) -> tuple[dict[str, list], dict[int, int]]:
    """Columns of the runs a page uses (in commit order) and each run position's row in them."""
    rows = sorted(set(used))
    table: dict[str, list] = {"order": [], "commit": [], "date": [], "branch": [], "machine": [], "label": []}
    table["carbon"] = []  # the run's grid intensity and its source, when it was saved with one
    for position in rows:
        run = history.runs[position]
        footprint = saved_footprint(run.machine_energy)
        table["carbon"].append(
            None
            if footprint.intensity_g_per_kwh is None
            else {"g_per_kwh": footprint.intensity_g_per_kwh, "source": footprint.carbon_source}
        )
        table["order"].append(position + 1)
        table["commit"].append(run.commit_id)
        table["date"].append(run.commit_time or run.datetime)
        table["branch"].append(_branch(run))
        table["machine"].append(_machine(run))
        table["label"].append(run.label)
    return table, {position: row for row, position in enumerate(rows)}


def benchmark_data(history: _History, name: str) -> dict[str, Any]:
    """Everything one benchmark's page draws: its runs, each metric's series per machine, their change points."""
    metrics = history.by_benchmark[name]
    positions = {id(s): _positions(history, s) for series in metrics.values() for s in series}
    table, row_of = _runs_table(history, (p for ps in positions.values() for p in ps))
    meters: dict[tuple[str | None, str | None], int] = {}
    out = []
    for metric, label in PAGE_METRICS.items():
        if metric not in metrics:
            continue
        series_out, changes_out = [], []
        for series in metrics[metric]:
            where = positions[id(series)]
            series_out.append(
                {
                    "machine": series.machine or NO_MACHINE,
                    "run": [row_of[p] for p in where],
                    "value": [_round(p.value) for p in series.points],
                    "stddev": [_round(p.stddev) for p in series.points],
                    "meter": [meters.setdefault((p.source, p.meter), len(meters)) for p in series.points],
                    # grams CO2e per call, with the run's own factor (joules only; None without a factor)
                    "grams": [
                        _round(saved_footprint(history.runs[pos].machine_energy).grams(p.value))
                        if metric == "joules"
                        else None
                        for pos, p in zip(where, series.points)
                    ],
                }
            )
            for change in history.changes[(name, metric, series.machine)]:
                entry = _change_json(change, series, [row_of[p] for p in where])
                changes_out.append(entry)
        out.append({"metric": metric, "label": label, "series": series_out, "changes": changes_out})
    return {
        "benchmark": name,
        "runs": table,
        "meters": [{"source": source, "meter": meter} for (source, meter) in meters],
        "metrics": out,
    }


def _summary(points: Sequence[Point]) -> dict[str, Any]:
    """Latest value, its source and meter, the change against the median of the runs before it, a sparkline."""
    latest = points[-1]
    before = sorted(p.value for p in points[-1 - TREND_WINDOW : -1])
    trend = None
    if before:
        middle = len(before) // 2
        median = before[middle] if len(before) % 2 else (before[middle - 1] + before[middle]) / 2
        trend = latest.value / median - 1 if median else None
    return {
        "latest": _round(latest.value),
        "source": latest.source,
        "meter": latest.meter,
        "commit": latest.commit,
        "trend": _round(trend),
        "compared": len(before),
        "spark": [_round(p.value) for p in points[-SPARK_POINTS:]],
        "runs": len(points),
    }


def index_data(history: _History, pages: Mapping[str, str]) -> dict[str, Any]:
    """The index's rows: one per benchmark and machine, on joules per call (seconds when it has no joules)."""
    rows = []
    for name, metrics in history.by_benchmark.items():
        metric = next((m for m in ("joules", "time", "accuracy", "joules_to_target") if m in metrics), None)
        if metric is None:
            continue
        for series in metrics[metric]:
            branches: dict[str, list[Point]] = {}
            for point in series.points:
                branches.setdefault(_branch(point), []).append(point)
            open_changes = [
                _change_json(c, series, _positions(history, series)) | {"metric": m}
                for m in metrics
                for c in history.changes.get((name, m, series.machine), [])  # a metric this machine lacks: none
                if not c.accepted
            ]
            rows.append(
                {
                    "benchmark": name,
                    "href": pages[name],
                    "machine": series.machine or NO_MACHINE,
                    "metric": metric,
                    "label": PAGE_METRICS[metric],
                    "all": _summary(series.points),
                    "branches": {branch: _summary(points) for branch, points in branches.items()},
                    "open": open_changes,
                }
            )
    machines = sorted({row["machine"] for row in rows})
    branches = sorted({b for row in rows for b in row["branches"]})
    return {"rows": rows, "machines": machines, "branches": branches, "runs": len(history.runs)}


def study_data(history: _History) -> dict[str, Any]:
    """Joules to the reference's accuracy as a ratio to the reference, per model and compressor, for every run
    that has the study's groups (ranked by :func:`energy_bench.runs.ranking.rank`); the latest run's summary."""
    rows = []
    latest: dict[str, dict[str, Any]] = {}
    for position, run in enumerate(history.runs):
        records = list(run.benchmarks.values())
        if not any(r.to_target is not None for r in records):
            continue
        groups = [g for g in ranking.rank(records) if g.metric == ranking.TO_TARGET and g.reference is not None]
        if not groups:
            continue
        for group in groups:
            for ranked in group.ranked:
                rows.append(
                    {
                        "run": position + 1,
                        "commit": run.commit_id,
                        "date": run.commit_time or run.datetime,
                        "branch": _branch(run),
                        "machine": _machine(run),
                        "model": group.group,
                        "variant": ranked.entry.variant,
                        "ratio": _round(ranked.ratio),
                        "verdict": ranked.verdict,
                        "accuracy": _round(ranked.entry.accuracy),
                        "estimated": ranked.entry.estimated,
                    }
                )
        latest[_machine(run)] = {
            "run": position + 1,
            "label": run.label,
            "commit": run.commit_id,
            "summary": ranking.summary_lines(groups),
            "estimated": any(g.estimated for g in groups),
        }
    return {"rows": rows, "latest": latest, "reference": ranking.DEFAULT_REFERENCE}


# ---------------------------------------------------------------------------- files


def plotly_js() -> Path:
    """The plotly.js the site ships; :class:`PublishError` when the install lacks it."""
    if not PLOTLY_JS.is_file():
        raise PublishError(f"this energy-bench install has no {PLOTLY_JS}: reinstall it")
    return PLOTLY_JS


def site_script() -> str:
    return resources.files("energy_bench.history").joinpath("site.js").read_text(encoding="utf-8")


_NAV = (("index.html", "benchmarks"), ("study.html", "study"))


def _page(kind: str, title: str, data: Any, heading: str, depth: int = 0, plots: bool = True) -> str:
    """One page; ``plots=False`` leaves plotly.js out (the index draws its sparklines as plain SVG)."""
    up = "../" * depth
    body = (
        f"<h1 id=title>{html.escape(heading)}</h1>\n<div id=app></div>\n"
        f"<noscript>This page draws its plots with JavaScript.</noscript>\n{script_json(data, 'eb-data')}"
    )
    return page(
        title,
        body,
        nav=[(up + href, text) for href, text in _NAV],
        stylesheet=f"{up}assets/style.css",
        scripts=[f"{up}assets/{PLOTLY_JS.name}"] * plots + [f"{up}assets/site.js"],
        attributes=f' data-page="{html.escape(kind)}"',
    )


def _write(path: Path, text: str, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    written.append(path)


def _dump(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def publish(
    runs: Sequence[SavedRun],
    site: Path | str,
    *,
    changes: ChangeFinder = find_changes,
    title: str = "energy-bench history",
) -> Published:
    """Write the site of ``runs`` (oldest first, as a store returns them) into ``site``.

    ``changes`` finds the change points of one series (default :func:`find_changes`). Pages of benchmarks no longer
    in the history are removed from ``site/b``; other files in ``site`` are left alone.
    """
    source = plotly_js()
    site = Path(site)
    history = _history(runs, changes)
    pages = {name: f"b/{slug(name)}.html" for name in history.by_benchmark}
    written: list[Path] = []
    try:
        (site / "assets").mkdir(parents=True, exist_ok=True)
        for source_file in (source, PLOTLY_LICENSE):
            target = site / "assets" / source_file.name
            if not target.is_file() or target.read_bytes() != source_file.read_bytes():
                shutil.copyfile(source_file, target)
            written.append(target)
        _write(site / "assets" / "site.js", site_script(), written)
        _write(site / "assets" / "style.css", STYLE, written)
        points = shown = 0
        for name, href in pages.items():
            data = benchmark_data(history, name)
            points += sum(len(s["value"]) for m in data["metrics"] for s in m["series"])
            shown += sum(len(m["changes"]) for m in data["metrics"])
            _write(site / href, _page("benchmark", f"{name} - {title}", data, name, depth=1), written)
            _write(site / "data" / (href[:-5] + ".json"), _dump(data), written)
        index = index_data(history, pages)
        _write(site / "index.html", _page("index", title, index, title, plots=False), written)
        _write(site / "data" / "index.json", _dump(index), written)
        study = study_data(history)
        _write(site / "study.html", _page("study", f"study - {title}", study, "The study: energy to target"), written)
        _write(site / "data" / "study.json", _dump(study), written)
        _remove_stale(site, written)
    except OSError as exc:
        raise PublishError(f"cannot write the site in {site}: {exc.strerror or exc}") from None
    return Published(
        index=site / "index.html",
        pages=len(pages),
        points=points,
        changes=shown,
        files=len(written),
        bytes=sum(p.stat().st_size for p in written),
    )


def _remove_stale(site: Path, written: Sequence[Path]) -> None:
    """Pages and data files of benchmarks that are no longer in the history, and a plotly.js another version of
    energy-bench shipped (only in the site's own folders)."""
    keep = {p.resolve() for p in written}
    for folder, pattern in ((site / "b", "*.html"), (site / "data" / "b", "*.json"), (site / "assets", "plotly*.js")):
        for path in folder.glob(pattern):
            if path.resolve() not in keep:
                path.unlink()
