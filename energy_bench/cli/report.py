"""``energy-bench report``: one saved run as a table, its ranking against a reference variant, and (``--html``) a
self-contained page of figures."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from energy_bench.cli.compare import add_storage_options, open_storage
from energy_bench.meters.estimate import model_from_spec
from energy_bench.runs import formats, ranking
from energy_bench.runs.estimate_model import EstimateModelError, model_line, rescale_run
from energy_bench.runs.footprint import factor_lines
from energy_bench.runs.parse import RunLoadError, load_run_file, read_json, run_from_json
from energy_bench.runs.store.files import RunNotFound
from energy_bench.runs.text import printable

EPILOG = """examples:
  energy-bench report                       the latest run saved on this machine
  energy-bench report 3 --format markdown   run 0003 as markdown (with its ranking)
  energy-bench report 3 --html report/      run 0003 as report/index.html with PNG and SVG figures
  energy-bench report run.json --reference fp32 --html out/
  energy-bench report 3 --estimate-model detect --save-json run3-recomputed.json
                                            run 0003's estimated joules recomputed with this CPU's coefficients
"""


def add_parser(commands) -> None:
    report = commands.add_parser(
        "report",
        help="one saved run: energy table, ranking against a reference, figures (--html)",
        description="One saved run: its energy table, each group's variants ranked by joules to target (or per "
        "call) against a reference variant, a summary of what saved energy, and with --html a page of figures.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument(
        "run",
        nargs="?",
        default="latest",
        metavar="RUN",
        help="run number, JSON file or commit prefix (default: the latest on this machine)",
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


def load(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The run as :class:`SavedRun` (for its table) and as parsed JSON (for the ranking); usage error if neither."""
    storage = open_storage(args)
    try:
        path = storage.find(args.run)
        run, data = load_run_file(path), read_json(Path(path))  # the same checked reading for both
    except (RunNotFound, RunLoadError) as exc:
        parser.error(printable(str(exc)))
    if args.estimate_model is None:
        return run, data
    try:
        data = rescale_run(data, model_from_spec(args.estimate_model))
    except (ValueError, EstimateModelError) as exc:
        parser.error(f"--estimate-model: {printable(str(exc))}")
    return run_from_json(data, run.label, run.path), data


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
    run, data = load(parser, args)
    if args.save_json is not None:
        save_json(parser, args.save_json, data)
    rankings = ranking.rank(data["benchmarks"], args.reference)
    machine = data.get("machine_info") if isinstance(data.get("machine_info"), dict) else {}
    model = model_line(machine.get("energy"))
    factors = ([model] if model else []) + factor_lines(machine.get("energy"))
    print(render(run, rankings, args.format, args.reference, factors), end="")
    if args.html is not None:
        try:
            written = pages.write_html(
                args.html,
                title=f"energy-bench report: {run.label}",
                rankings=rankings,
                summary=ranking.summary_lines(rankings, args.reference),
                notes=([model] if model else []) + run.notes,
                machine_energy=machine.get("energy") if isinstance(machine.get("energy"), dict) else None,
                reference=args.reference,
            )
        except OSError as exc:
            parser.error(f"--html {args.html}: cannot write ({exc.strerror or exc})")
        print(f"wrote {written[0]} and {len(written) - 1} figure files", file=sys.stderr)
    return 0


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
        }
        data["factors"] = list(factors)
        return json.dumps(data, indent=2) + "\n"
    if fmt == "csv" or not (rankings or factors):
        return table
    tail = ranking.render_rankings(rankings, fmt, reference) if rankings else ""
    return table.rstrip("\n") + "\n\n" + tail + "".join(f"{line}\n" for line in factors)
