"""``energy-bench report``: one saved run as a table, its ranking against a reference variant, and (``--html``) a
self-contained page of figures; several saved sessions (``last:N`` or several RUNs) pooled, with verdicts that hold
between sessions (:mod:`energy_bench.runs.sessions`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from energy_bench.cli.compare import add_storage_options, parse_alpha
from energy_bench.cli.report_load import load_sessions
from energy_bench.runs import formats, ranking, session_text
from energy_bench.runs.compare import ALPHA
from energy_bench.runs.estimate_model import model_line
from energy_bench.runs.footprint import factor_lines
from energy_bench.runs.pool import pool_label, pooled_run
from energy_bench.runs.sessions import ONE_SESSION_NOTE, pool_rankings
from energy_bench.runs.text import printable

EPILOG = """examples:
  energy-bench report                       the latest run saved on this machine
  energy-bench report 3 --format markdown   run 0003 as markdown (with its ranking)
  energy-bench report 3 --html report/      run 0003 as report/index.html with PNG and SVG figures
  energy-bench report run.json --reference fp32 --html out/
  energy-bench report last:3                the 3 latest runs pooled: verdicts from a t interval over sessions
  energy-bench report 3 5 --html report/    runs 0003 and 0005 pooled, the page shows the verdicts across them
  energy-bench report 3 --estimate-model detect --save-json run3-recomputed.json
                                            run 0003's estimated joules recomputed with this CPU's coefficients
"""


def add_parser(commands) -> None:
    report = commands.add_parser(
        "report",
        help="saved runs: energy table, ranking against a reference, verdicts across sessions, figures (--html)",
        description="One saved run: its energy table, each group's variants ranked by joules to target (or per "
        "call) against a reference variant, a summary of what saved energy, and with --html a page of figures. "
        "Several runs (last:N, or several RUNs) are pooled: a variant saved energy (or cost more) only when the "
        "t interval over the sessions of its ratio to the reference is wholly below (above) 1.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument(
        "run",
        nargs="*",
        metavar="RUN",
        help="run number, JSON file, commit prefix or last:N (the N latest on this machine); several are pooled "
        "(default: the latest on this machine)",
    )
    add_storage_options(report)
    report.add_argument("--format", choices=formats.FORMATS, default="table", help="output format (default table)")
    report.add_argument(
        "--reference",
        default=ranking.DEFAULT_REFERENCE,
        metavar="VARIANT",
        help=f"variant the others are compared with (default {ranking.DEFAULT_REFERENCE}): extra_info.variant or "
        "extra_info.compressor, else the parametrization id",
    )
    report.add_argument(
        "--alpha",
        type=parse_alpha,
        default=ALPHA,
        help=f"with several RUNs: the interval over sessions is 1 - ALPHA (default {ALPHA}: 95%%)",
    )
    report.add_argument(
        "--html",
        metavar="DIR",
        type=Path,
        help="also write DIR/index.html (figures embedded, no network) and each figure as PNG and SVG "
        "(needs matplotlib: the 'plot' extra)",
    )
    report.add_argument(
        "--estimate-model",
        metavar="MODEL",
        help="recompute estimated joules (and grams, cost) with another estimate model: 'detect' (this machine's "
        "CPU), an architecture ('milan', 'cascade-lake', 'default' for an unknown CPU) or watts per CPU second",
    )
    report.add_argument(
        "--save-json",
        metavar="FILE",
        type=Path,
        help="with --estimate-model: also write the recomputed run as FILE (pytest-benchmark JSON, for compare)",
    )
    report.set_defaults(handler=run_report, subparser=report)


def run_report(args: argparse.Namespace) -> int:
    parser = args.subparser
    if args.html is not None:
        from energy_bench.runs import report as pages  # matplotlib only with --html

        try:
            pages.require_matplotlib()
        except pages.PlotUnavailable as exc:
            print(f"energy-bench report: {exc}", file=sys.stderr)
            return 2
    if args.save_json is not None and args.estimate_model is None:
        parser.error("--save-json needs --estimate-model (without it the run is the file it was read from)")
    sessions, notes = load_sessions(parser, args)
    if args.save_json is not None:
        save_json(parser, args.save_json, sessions[0][1])
    for note in notes:
        print(f"energy-bench: {note}", file=sys.stderr)
    page = report_one(args, *sessions[0]) if len(sessions) == 1 else report_pooled(args, sessions)
    if args.html is not None:
        try:
            written = pages.write_html(args.html, reference=args.reference, **page)
        except OSError as exc:
            parser.error(f"--html {args.html}: cannot write ({exc.strerror or exc})")
        print(f"wrote {written[0]} and {len(written) - 1} figure files", file=sys.stderr)
    return 0


def _factors(data: dict[str, Any]) -> tuple[str | None, list[str], dict[str, Any] | None]:
    """The estimate model line, it with the carbon and price factors, and ``machine_info.energy`` of a run."""
    machine = data.get("machine_info") if isinstance(data.get("machine_info"), dict) else {}
    energy = machine.get("energy") if isinstance(machine.get("energy"), dict) else None
    model = model_line(energy)
    return model, ([model] if model else []) + factor_lines(energy), energy


def report_one(args: argparse.Namespace, run: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Print one session's report (its verdicts said to rest on it alone); return what its page shows."""
    rankings = ranking.rank(data["benchmarks"], args.reference)
    model, factors, energy = _factors(data)
    print(render(run, rankings, args.format, args.reference, factors), end="")
    return {
        "title": f"energy-bench report: {run.label}",
        "rankings": rankings,
        "summary": ranking.summary_lines(rankings, args.reference) + ([ONE_SESSION_NOTE] if rankings else []),
        "notes": ([model] if model else []) + run.notes,
        "machine_energy": energy,
    }


def report_pooled(args: argparse.Namespace, sessions: list[tuple[Any, dict[str, Any]]]) -> dict[str, Any]:
    """Print the sessions' pooled table and verdicts across them; return what the page shows (the pooled verdicts,
    then the newest session's tables and figures)."""
    runs = [run for run, _ in sessions]
    per_session = [ranking.rank(data["benchmarks"], args.reference) for _, data in sessions]
    pooled = pool_rankings(per_session, args.reference, args.alpha)
    model, factors, energy = _factors(sessions[-1][1])
    print(render_sessions(runs, per_session, pooled, args, factors), end="")
    newest = runs[-1]
    return {
        "title": f"energy-bench report: {pool_label(runs)}",
        "rankings": per_session[-1],
        "summary": session_text.pooled_summary(pooled, args.reference, len(runs), args.alpha),
        "notes": ([model] if model else [])
        + [f"The tables and figures under the verdicts are the newest session's, {newest.label}."]
        + [note for run in runs for note in run.notes],
        "machine_energy": energy,
        "verdicts": session_text.pooled_cells(pooled, args.alpha),
        "verdicts_title": f"Verdicts across {len(runs)} sessions",
    }


def save_json(parser: argparse.ArgumentParser, path: Path, data: dict[str, Any]) -> None:
    """Write the recomputed run atomically (a temporary file renamed over ``path``)."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        parser.error(f"--save-json {printable(str(path))}: cannot write ({exc.strerror or exc})")
    print(f"wrote {printable(str(path))}", file=sys.stderr)


def render(run: Any, rankings: list[ranking.GroupRanking], fmt: str, reference: str, factors: list[str] = ()) -> str:
    """The run's table and, for table/markdown/json, its ranking and the carbon and price factors it was saved
    with (csv stays one table)."""
    table = formats.render_report(run, fmt)
    if fmt == "json":
        data = json.loads(table)
        data["ranking"] = {
            "reference": reference,
            "rows": ranking.ranking_rows(rankings),
            "summary": ranking.summary_lines(rankings, reference),
            "sessions": 1,
            "note": ONE_SESSION_NOTE,
        }
        data["factors"] = list(factors)
        return json.dumps(data, indent=2) + "\n"
    if fmt == "csv" or not (rankings or factors):
        return table
    tail = ranking.render_rankings(rankings, fmt, reference) + f"\n{ONE_SESSION_NOTE}\n" if rankings else ""
    return table.rstrip("\n") + "\n\n" + tail + "".join(f"{line}\n" for line in factors)


def render_sessions(
    runs: list[Any], per_session: list, pooled: list, args: argparse.Namespace, factors: list[str]
) -> str:
    """The sessions' pooled energy table (means over sessions, their spread between sessions) and, for
    table/markdown/json, the verdicts across sessions (csv stays one table)."""
    table = formats.render_report(pooled_run(runs), args.format)
    labels = [run.label for run in runs]
    if args.format == "json":
        data = json.loads(table)
        data["sessions"] = [
            {"run": run.label, "rows": ranking.ranking_rows(rankings)} for run, rankings in zip(runs, per_session)
        ]
        data["pooled"] = {
            "reference": args.reference,
            "sessions": len(runs),
            "alpha": args.alpha,
            "rows": session_text.pooled_rows(pooled, args.alpha),
            "summary": session_text.pooled_summary(pooled, args.reference, len(runs), args.alpha),
        }
        data["factors"] = list(factors)
        return json.dumps(data, indent=2) + "\n"
    if args.format == "csv":
        return table
    tail = session_text.render_pooled(pooled, args.format, args.reference, labels, args.alpha) if pooled else ""
    return table.rstrip("\n") + "\n\n" + tail + "".join(f"{line}\n" for line in factors)
