"""Figures and a self-contained HTML page of a ranked run (``energy-bench report RUN --html DIR``).

Three kinds of figure, built from :mod:`energy_bench.runs.ranking` (so any saved run can be drawn):

* per group: joules to the target (or per call) against accuracy, one point per variant, with the Pareto front
  (no other variant is both cheaper and at least as accurate);
* the paper's comparison: each variant's joules as a ratio to the reference's, per group (1 = the reference);
* per group with curves: accuracy against cumulative joules, round by round (``to_target.curve``).

Estimated joules say so in the axis label and the title. Matplotlib is the ``plot`` extra: it is imported on use,
through its object-oriented API (``matplotlib.figure.Figure``, no pyplot state), so the figures render headless.
The page embeds every figure as a PNG data URI and loads nothing from the network; each figure is also written
as PNG and SVG beside it.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from tabulate import tabulate

from energy_bench.errors import EnergyBenchError
from energy_bench.runs import look
from energy_bench.runs.footprint import factor_lines
from energy_bench.runs.ranking import (
    DEFAULT_REFERENCE,
    NOT_MEASURED,
    NOT_REACHED,
    PER_CALL,
    RANKED_BY_JOULES,
    TO_TARGET,
    GroupRanking,
    group_title,
    table_cells,
)
from energy_bench.runs.text import format_ratio

PLOT_EXTRA = "pip install -e '.[plot]' (the plot extra)"
FIGURE_SIZE = (6.4, 4.2)
PAGE_NAME = "index.html"


class PlotUnavailable(EnergyBenchError, ImportError):
    """Matplotlib is not installed: the message says how to get it."""


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable(f"figures need matplotlib, which is not installed: {PLOT_EXTRA}") from None


def _figure(width: float = FIGURE_SIZE[0]) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, FIGURE_SIZE[1]), layout="constrained")


def _energy_label(metric: str, estimated: bool) -> str:
    label = "joules to target (J)" if metric == TO_TARGET else "joules per call (J)"
    return label.replace("(J)", "(J, estimated)") if estimated else label


def _title(text: str, estimated: bool) -> str:
    return f"{text}\n(estimated energy, not measured)" if estimated else text


# ---------------------------------------------------------------------------- Pareto


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates (lower or equal joules and higher or equal accuracy, one of
    them strictly), sorted by joules."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((ox <= x and oy >= y) and (ox < x or oy > y) for j, (ox, oy) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


#: where a point's label may go, in points from the point, tried in order: beside it, then further up or down
_LABEL_OFFSETS = [(dx, dy) for dy in (3, -11, 15, -23, 27, -35, 39, -47) for dx in (6, -6)]


def place_labels(ax: Any, points: Sequence[tuple[float, float]], labels: Sequence[str]) -> None:
    """Label each point where the label overlaps no label placed before it (close points, such as a baseline and
    a variant at the same joules and accuracy, get labels above and below each other instead of on top)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = ax.figure
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    fig.draw_without_rendering()  # the constrained layout fixes the axes, so display positions hold
    renderer = canvas.get_renderer()
    placed: list[Any] = []
    for xy, label in sorted(zip(points, labels), key=lambda item: (-item[0][1], item[0][0])):
        for dx, dy in _LABEL_OFFSETS:
            text = ax.annotate(
                label, xy, textcoords="offset points", xytext=(dx, dy), fontsize=8, ha="left" if dx > 0 else "right"
            )
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in placed):
                break
            text.remove()
        else:  # no free place near the point: the first one, overlapping
            text = ax.annotate(label, xy, textcoords="offset points", xytext=_LABEL_OFFSETS[0], fontsize=8)
            box = text.get_window_extent(renderer)
        placed.append(box)


def pareto_figure(group: GroupRanking) -> Any:
    """Joules against accuracy for one group: variants that reached (or ran), those that did not, the front."""
    fig = _figure()
    ax = fig.add_subplot()
    shown = [r for r in group.ranked if r.verdict in RANKED_BY_JOULES and r.entry.accuracy is not None]
    missed = [r for r in group.ranked if r.verdict == NOT_REACHED and r.entry.accuracy is not None]
    xs = [r.entry.joules for r in shown]
    ys = [r.entry.accuracy for r in shown]
    ax.scatter(xs, ys, marker="o", zorder=3, label="reached the target" if group.metric == TO_TARGET else "variant")
    if missed:
        ax.scatter(
            [r.entry.joules for r in missed],
            [r.entry.accuracy for r in missed],
            marker="x",
            zorder=3,
            label="not reached (joules of all its rounds)",
        )
    front = pareto_front(list(zip(xs, ys)))
    if front:
        ax.plot(
            [xs[i] for i in front],
            [ys[i] for i in front],
            linestyle="--",
            drawstyle="steps-post",
            marker="s",
            markersize=11,
            markerfacecolor="none",
            zorder=2,
            label="Pareto front",
        )
    target = next((r.entry.target for r in group.ranked if r.entry.target is not None), None)
    if target is not None:
        ax.axhline(target, color="gray", linewidth=0.8, linestyle=":", label=f"target {target:.3f}")
    ax.set_xlabel(_energy_label(group.metric, group.estimated))
    ax.set_ylabel("accuracy")
    ax.set_title(_title(f"{group.group}: energy and accuracy", group.estimated))
    ax.legend(fontsize=8)
    labelled = shown + missed  # last: the labels are placed in the final layout
    place_labels(ax, [(r.entry.joules, r.entry.accuracy) for r in labelled], [r.entry.variant for r in labelled])
    return fig


# ---------------------------------------------------------------------------- ratios


def ratio_figure(rankings: Sequence[GroupRanking], metric: str = TO_TARGET, reference: str = DEFAULT_REFERENCE):
    """Bars: each variant's joules over the reference's, per group; ``x`` marks a variant that did not reach the
    target. None when no group of ``metric`` has a reference."""
    groups = [g for g in rankings if g.metric == metric and g.reference is not None]
    if not groups:
        return None
    variants = list(dict.fromkeys(v for g in groups for v in g.variants if v != reference))
    fig = _figure(width=max(FIGURE_SIZE[0], 0.9 * len(groups) + 2))
    ax = fig.add_subplot()
    width = 0.8 / max(len(variants), 1)
    estimated = any(g.estimated for g in groups)
    ratios = [r.ratio for g in groups for r in g.ranked if r.ratio is not None]
    top = max([1.0, *ratios]) * 1.08
    for k, variant in enumerate(variants):
        xs, heights, missed = [], [], []
        for i, group in enumerate(groups):
            found = next((r for r in group.ranked if r.entry.variant == variant), None)
            x = i - 0.4 + width * (k + 0.5)
            if found is not None and found.ratio is not None:
                xs.append(x)
                heights.append(found.ratio)
            elif found is not None and found.verdict == NOT_REACHED:
                missed.append(x)
        color = f"C{k % 10}"  # the bar's colour, also when it has no bar at all
        ax.bar(xs, heights, width=width, label=variant, color=color)
        if missed:
            ax.scatter(missed, [top] * len(missed), marker="x", color=color, label=f"{variant}: not reached")
    ax.axhline(1.0, color="black", linewidth=0.8, label=reference)
    ax.set_xticks(range(len(groups)), [g.group for g in groups], rotation=30, ha="right")
    what = "joules to target" if metric == TO_TARGET else "joules per call"
    ax.set_ylabel(f"{what} / {reference}'s" + (" (estimated)" if estimated else ""))
    title = (
        f"Energy to {reference}'s accuracy, relative to {reference}"
        if metric == TO_TARGET
        else f"Energy per call, relative to {reference} (no accuracy target)"
    )
    ax.set_title(_title(title, estimated))
    fig.legend(loc="outside lower center", fontsize=7, ncols=3)
    return fig


# ---------------------------------------------------------------------------- curves


def curve_figure(group: GroupRanking) -> Any:
    """Accuracy after each round against cumulative joules, one line per variant; None without curves."""
    with_curve = [r for r in group.ranked if r.entry.curve_joules and r.entry.curve_values]
    if not with_curve:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for r in with_curve:
        n = min(len(r.entry.curve_joules), len(r.entry.curve_values))
        ax.plot(r.entry.curve_joules[:n], r.entry.curve_values[:n], marker=".", label=r.entry.variant)
    target = next((r.entry.target for r in group.ranked if r.entry.target is not None), None)
    if target is not None:
        ax.axhline(target, color="gray", linewidth=0.8, linestyle=":", label=f"target {target:.3f}")
    ax.set_xlabel("cumulative joules (J, estimated)" if group.estimated else "cumulative joules (J)")
    ax.set_ylabel("accuracy")
    ax.set_title(_title(f"{group.group}: accuracy round by round", group.estimated))
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------- files and page


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "group"


def save_figure(fig: Any, folder: Path, name: str) -> tuple[Path, str]:
    """Write ``name``.png and ``name``.svg; return the PNG path and its base64 text for the page."""
    png = folder / f"{name}.png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    png.write_bytes(buffer.getvalue())
    fig.savefig(folder / f"{name}.svg", format="svg")
    return png, base64.b64encode(buffer.getvalue()).decode("ascii")


def figures(rankings: Sequence[GroupRanking], reference: str = DEFAULT_REFERENCE) -> list[tuple[str, str, Any]]:
    """(section, file name, Figure) of every figure of the report, in page order ("" = the overview).

    A group with no joules to draw (every variant not measured or failed) has no Pareto figure.
    """
    out = []
    for metric, name in ((TO_TARGET, "ratio-to-target"), (PER_CALL, "ratio-per-call")):
        fig = ratio_figure(rankings, metric, reference)
        if fig is not None:
            out.append(("", name, fig))
    for group in rankings:
        if any(r.verdict in (*RANKED_BY_JOULES, NOT_REACHED) and r.entry.accuracy is not None for r in group.ranked):
            out.append((group.group, f"pareto-{slug(group.group)}", pareto_figure(group)))
        fig = curve_figure(group)
        if fig is not None:
            out.append((group.group, f"curve-{slug(group.group)}", fig))
    return out


def split_measured(rankings: Sequence[GroupRanking]) -> tuple[list[GroupRanking], list[str]]:
    """The groups without their benchmarks that carry no energy record, and those benchmarks' names: a report
    lists them apart (they were not measured; nothing failed)."""
    kept, not_measured = [], []
    for group in rankings:
        measured = [r for r in group.ranked if r.verdict != NOT_MEASURED]
        not_measured += [r.entry.fullname for r in group.ranked if r.verdict == NOT_MEASURED]
        if measured:
            kept.append(replace(group, ranked=measured, variants=tuple(r.entry.variant for r in measured)))
    return kept, not_measured


def verdict_cells(rankings: Sequence[GroupRanking], reference: str = DEFAULT_REFERENCE) -> tuple[list, list]:
    """The overview: a row per group, a column per variant, each cell the ratio and the verdict."""
    variants = list(dict.fromkeys(v for g in rankings for v in g.variants))
    variants.sort(key=lambda v: v != reference)  # the reference first
    rows = []
    for group in rankings:
        cells = {r.entry.variant: f"{format_ratio(r.ratio)} {r.verdict}".strip() for r in group.ranked}
        rows.append(
            [
                group.group,
                group.metric + (" (estimated)" if group.estimated else ""),
                *(cells.get(v, "") for v in variants),
            ]
        )
    return ["group", "joules", *variants], rows


def summary_html(summary: Sequence[str]) -> str:
    """The summary sentences: heads as paragraphs, ``- `` lines as a list under their head."""
    out, items = [], []
    for line in [*summary, ""]:
        if line.startswith("- "):
            items.append(f"<li>{html.escape(line[2:])}</li>")
            continue
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items = []
        if line:
            out.append(f"<p>{html.escape(line)}</p>")
    return f'<div class="summary">{"".join(out)}</div>' if out else ""


def write_html(
    folder: Path | str,
    *,
    title: str,
    rankings: Sequence[GroupRanking],
    summary: Sequence[str],
    notes: Sequence[str] = (),
    machine_energy: Mapping[str, Any] | None = None,
    reference: str = DEFAULT_REFERENCE,
    verdicts: tuple[list[str], list[list[str]]] | None = None,
    verdicts_title: str = "Verdicts",
) -> list[Path]:
    """Write ``index.html`` and the figures into ``folder``; return the files written (the page first).

    ``verdicts``: headers and cells of the verdict table in place of the one built from ``rankings`` (the verdicts
    across sessions, when several were pooled; ``rankings`` then give the tables and figures under it).

    The page: the verdicts of every group first, the summary, what was not measured, then the overview figures and
    each group's table and figures. Same style as the published history (:mod:`energy_bench.runs.look`), inlined.
    """
    require_matplotlib()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    measured, not_measured = split_measured(rankings)
    written: list[Path] = []
    images: dict[str, list[str]] = {}
    for section, name, fig in figures(measured, reference):
        png, data = save_figure(fig, folder, name)
        written += [png, png.with_suffix(".svg")]
        images.setdefault(section, []).append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">')
    body = [f"<h1>{html.escape(title)}</h1>"]
    if verdicts is None and measured:
        verdicts = verdict_cells(measured, reference)
    if verdicts is not None and verdicts[1]:
        table = tabulate(verdicts[1], headers=verdicts[0], tablefmt="html", disable_numparse=True)
        body.append(f'<h2 id=verdicts>{html.escape(verdicts_title)}</h2><div class="verdicts">{table}</div>')
    body.append(summary_html(summary))
    body += [f"<p class=note>{html.escape(line)}</p>" for line in factor_lines(machine_energy) + list(notes)]
    if not_measured:
        body.append(
            "<h2 id=not-measured>Not measured</h2><p>No energy record (benchmarks without the energy "
            "fixture), so nothing to rank:</p><ul>"
        )
        body += [f"<li>{html.escape(name)}</li>" for name in not_measured] + ["</ul>"]
    if images.get(""):
        body.append('<div class="figures">' + "".join(images[""]) + "</div>")
    for group in measured:
        headers, rows = table_cells(group)
        body.append(f"<h2>{html.escape(group_title(group))}</h2>")
        body.append(tabulate(rows, headers=headers, tablefmt="html", disable_numparse=True))
        body.append('<div class="figures">' + "".join(images.get(group.group, [])) + "</div>")
    page = folder / PAGE_NAME
    page.write_text(look.page(title, "\n".join(body)), encoding="utf-8")
    return [page, *written]
