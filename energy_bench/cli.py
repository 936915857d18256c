"""The ``energy-bench`` command: compare saved runs, show one run, fetch the study's weights.

Exit codes: 0 fine, 1 a regression under ``--fail`` (or a failed fetch), 2 bad arguments or runs that
cannot be compared (argparse's convention).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from energy_bench import formats
from energy_bench.compare import (
    ALPHA, DEFAULT_THRESHOLDS, ThresholdError, compare_records, compatibility_problems, parse_thresholds,
)
from energy_bench.storage import DEFAULT_STORAGE, RunLoadError, RunNotFound, SavedRun, Storage, load_run_file

EPILOG = """examples:
  energy-bench compare                      the last two runs saved on this machine
  energy-bench compare 3 7                  runs 0003 and 0007 (the first is the baseline)
  energy-bench compare base.json 1a2b3c     a file and a commit prefix
  energy-bench compare --fail joules:5%,accuracy:1pt --format markdown >> "$GITHUB_STEP_SUMMARY"
  energy-bench compare --history            every benchmark's trend over all saved runs
"""


def _thresholds(text: str) -> tuple:
    try:
        return parse_thresholds(text)
    except ThresholdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="energy-bench", description="energy-bench: saved runs and study weights.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    compare = commands.add_parser("compare", help="compare saved runs (joules, time, accuracy)",
                                  description="Compare saved runs; the first run is the baseline.",
                                  epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("runs", nargs="*", metavar="RUN",
                         help="run number, JSON file or commit prefix (default: the last two on this machine)")
    _add_storage(compare)
    compare.add_argument("--format", choices=formats.FORMATS, default="table", help="output format (default table)")
    compare.add_argument("--fail", type=_thresholds, metavar="EXPR[,EXPR...]",
                         help="exit 1 on a regression beyond these thresholds, e.g. joules:5%%,accuracy:1pt "
                              "(threshold AND one-sided Mann-Whitney U test)")
    compare.add_argument("--alpha", type=_alpha, default=ALPHA, help=f"significance level (default {ALPHA})")
    compare.add_argument("--force", action="store_true",
                         help="compare even measured with estimated energy, or different meters/devices")
    compare.add_argument("--history", action="store_true",
                         help="each benchmark's trend over all saved runs (or the RUNs given), in commit order")

    compare.set_defaults(subparser=compare)

    report = commands.add_parser("report", help="energy table of one saved run")
    report.add_argument("run", nargs="?", default="latest", metavar="RUN",
                        help="run number, JSON file or commit prefix (default: the latest on this machine)")
    _add_storage(report)
    report.add_argument("--format", choices=formats.FORMATS, default="table", help="output format (default table)")
    report.set_defaults(subparser=report)

    fetch = commands.add_parser("fetch-weights", help="download the study's pretrained weights into the cache")
    fetch.add_argument("models", nargs="*", metavar="MODEL", help="model names (default: all nine)")
    return parser


def _add_storage(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--storage", "-s", default=DEFAULT_STORAGE, metavar="URI",
                     help=f"pytest-benchmark storage: file://PATH or PATH (default {DEFAULT_STORAGE})")
    sub.add_argument("--machine-id", default=None,
                     help="machine folder inside the storage (default: this machine's, as pytest-benchmark names it)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command == "fetch-weights":
        return _fetch_weights(args.models)
    parser = args.subparser  # errors show the subcommand's usage
    try:
        storage = Storage.from_uri(args.storage, args.machine_id)
    except ValueError as exc:
        parser.error(str(exc))
    if args.command == "report":
        run = _load(parser, storage, [args.run])
        if not run:
            parser.error(f"{args.run}: not a readable run")
        print(formats.render_report(run[0], args.format), end="")
        return 0
    return _compare(parser, storage, args)


def _warn(message: str) -> None:
    print(f"energy-bench: skipped {message}", file=sys.stderr)


def _load(parser: argparse.ArgumentParser, storage: Storage, specs: Sequence[str]) -> list[SavedRun]:
    runs = []
    for spec in specs:
        try:
            path = storage.find(spec)
        except RunNotFound as exc:
            parser.error(str(exc))
        try:
            runs.append(load_run_file(path))
        except RunLoadError as exc:
            _warn(str(exc))
    return runs


def _load_all(storage: Storage) -> list[SavedRun]:
    runs = []
    for path in storage.run_files():
        try:
            runs.append(load_run_file(path))
        except RunLoadError as exc:
            _warn(str(exc))
    return runs


def _compare(parser: argparse.ArgumentParser, storage: Storage, args: argparse.Namespace) -> int:
    runs = _load(parser, storage, args.runs) if args.runs else _load_all(storage)
    if args.history:
        if not runs:
            parser.error(f"no readable saved runs in {storage.folder}")
        runs.sort(key=lambda run: run.order_key)
        print(formats.render_history(runs, args.format, _notes(runs)), end="")
        return 0
    if not args.runs:
        runs = runs[-2:]
    if len(runs) < 2:
        where = "given" if args.runs else f"in {storage.folder}"
        parser.error(f"need two readable runs to compare, found {len(runs)} {where}")
    baseline = runs[0]
    if not args.force:
        for run in runs[1:]:
            problems = compatibility_problems(baseline.benchmarks, run.benchmarks,
                                              baseline.machine_energy, run.machine_energy)
            if problems:
                parser.error(f"refusing to compare {run.label} with {baseline.label}: {'; '.join(problems)} "
                             "(use --force to compare anyway)")
    thresholds = args.fail or parse_thresholds(DEFAULT_THRESHOLDS)
    report = formats.CompareReport(
        runs=runs,
        comparisons=[compare_records(baseline.benchmarks, run.benchmarks, thresholds, args.alpha) for run in runs[1:]],
        thresholds=thresholds, gating=bool(args.fail), alpha=args.alpha, notes=tuple(_notes(runs)),
    )
    print(formats.render_compare(report, args.format), end="")
    return 1 if args.fail and report.regressions else 0


def _notes(runs: list[SavedRun]) -> list[str]:
    return [note for run in runs for note in run.notes]


def _fetch_weights(models: list[str]) -> int:
    from energy_bench.study import weights, zoo  # lazy: only this command needs the study

    try:
        paths = weights.fetch_weights(models or list(zoo.MODEL_NAMES))
    except (ValueError, LookupError, OSError, RuntimeError) as exc:
        print(f"energy-bench fetch-weights: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
