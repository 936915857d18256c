"""``energy-bench history``: the history store (import, export) and what it shows over commits (show, accept).

The store is ``--history URL``, else ``$ENERGY_BENCH_HISTORY``, else ``history.sqlite`` in ``--storage`` (the file
every ``--benchmark-autosave`` writes); see :func:`energy_bench.runs.store.open_store`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from energy_bench.cli.compare import DEFAULT_STORAGE
from energy_bench.runs.parse import RunLoadError, SavedRun, read_json
from energy_bench.runs.store import ENV_VAR, StoreError, open_store
from energy_bench.runs.store.files import RUN_GLOB
from energy_bench.runs.text import printable

EPILOG = """examples:
  energy-bench history                               change points of every benchmark (joules per call)
  energy-bench history resnet18 --metric time        `show` is the default sub-command
  energy-bench history show resnet18 --metric accuracy --format markdown
  energy-bench history accept 'test_x.py::test_y' 5d6e7f8 --reason "bigger model on purpose"
  energy-bench history import .benchmarks/ old-runs/0007_abc.json
  energy-bench history export exported/              pytest-benchmark files back, as saved
  energy-bench history show --history postgresql://ci@db.example/energy
"""


def default_show(argv: list[str]) -> list[str]:
    """``energy-bench history [PATTERN] [--metric M] ...`` is ``history show ...``: reading the history is what the
    command is for, as ``git stash`` is ``git stash push``. ``argv`` starts after ``history``."""
    names = {"-h", "--help", *SUBCOMMANDS}
    return argv if argv[:1] and argv[0] in names else ["show", *argv]


def add_parser(commands) -> None:
    history = commands.add_parser(
        "history",
        help="the history store: import, export, change points over commits",
        description="The history of saved runs: every --benchmark-save/--benchmark-autosave goes into it; "
        "import older files, export them back, and show where a benchmark changed (show is the default: "
        "energy-bench history [PATTERN] [--metric M]).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subs = history.add_subparsers(dest="history_command", required=True, metavar="SUBCOMMAND")
    for name, adder in SUBCOMMANDS.items():
        adder(subs, name)


def add_store_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--history",
        default=None,
        metavar="URL",
        help=f"the store: a SQLite file or sqlite:///PATH, or postgresql://... (default: ${ENV_VAR}, else "
        "history.sqlite in --storage)",
    )
    sub.add_argument("--storage", "-s", default=DEFAULT_STORAGE, metavar="PATH", help="pytest-benchmark storage")


def open_args_store(args: argparse.Namespace):
    """The store the arguments name; a usage error (exit 2, one line, password masked) when it cannot open."""
    try:
        return open_store(args.history or os.environ.get(ENV_VAR) or None, args.storage)
    except StoreError as exc:
        args.subparser.error(printable(str(exc)))


def load_history_runs(args: argparse.Namespace, *, readable_machines: bool = False) -> list[SavedRun]:
    """Every run in the store (of ``--machine``, on ``--branch`` where the command has them), oldest first.

    ``readable_machines``: each run's machine shown by its name and the start of its fingerprint (for pages people
    read), instead of the fingerprint alone (which ``--machine`` takes).
    """
    store = open_args_store(args)
    try:
        runs = store.runs(machine=getattr(args, "machine", None), branch=getattr(args, "branch", None))
        if readable_machines:
            names = {machine.fingerprint: machine.name for machine in store.machines()}
            for run in runs:
                if run.machine in names and names[run.machine] != run.machine:
                    run.machine = f"{names[run.machine]} [{run.machine[:8]}]"
        return runs
    except StoreError as exc:
        args.subparser.error(printable(str(exc)))
    finally:
        store.close()


# ---------------------------------------------------------------------------- import, export


def _import_parser(subs, name: str) -> None:
    sub = subs.add_parser(name, help="add saved runs (files or storage folders) to the store; twice adds nothing")
    sub.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="a run's JSON file or a folder of them")
    add_store_options(sub)
    sub.set_defaults(handler=run_import, subparser=sub)


def _run_files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(path.rglob(RUN_GLOB))
        else:
            yield path


def run_import(args: argparse.Namespace) -> int:
    store = open_args_store(args)
    added = kept = 0
    skipped: list[str] = []
    try:
        for path in _run_files(args.paths):
            try:
                data = read_json(path)
                text = path.read_text(encoding="utf-8")
                if store.add(data, origin=str(path), text=text):
                    added += 1
                else:
                    kept += 1
            except RunLoadError as exc:
                skipped.append(str(exc))
            except OSError as exc:
                skipped.append(f"{path}: cannot read ({exc.strerror or exc})")
    except StoreError as exc:
        print(f"energy-bench history import: {printable(str(exc))} ({added} run(s) added before it)", file=sys.stderr)
        return 2
    finally:
        store.close()
    for message in skipped:
        print(f"skipped {printable(message)}", file=sys.stderr)
    print(f"{store.display_url}: {added} run(s) added, {kept} already there, {len(skipped)} file(s) skipped")
    return 0


def _export_parser(subs, name: str) -> None:
    sub = subs.add_parser(name, help="write every run back as pytest-benchmark's JSON files, as saved")
    sub.add_argument("folder", type=Path, metavar="DIR", help="where the machine folders of runs go (created)")
    add_store_options(sub)
    sub.set_defaults(handler=run_export, subparser=sub)


def run_export(args: argparse.Namespace) -> int:
    store = open_args_store(args)
    try:
        export = getattr(store, "export", None)
        if export is None:
            args.subparser.error(f"{store.display_url}: already pytest-benchmark's files")
        written = export(args.folder)
    except (StoreError, OSError) as exc:
        print(f"energy-bench history export: {printable(str(exc))}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"wrote {len(written)} run file(s) under {printable(str(args.folder))}")
    return 0


# ---------------------------------------------------------------------------- show, accept


def _show_parser(subs, name: str) -> None:
    from energy_bench.history.accepted import DEFAULT_ACCEPTED
    from energy_bench.history.changepoints import ALPHA, MIN_CHANGE
    from energy_bench.history.series import METRICS

    sub = subs.add_parser(name, help="each benchmark's change points over commits (or its whole series)")
    sub.add_argument("pattern", nargs="?", default=None, help="only benchmarks whose name contains this")
    sub.add_argument("--metric", choices=METRICS, default="joules", help="joules (per call, default), time, ...")
    sub.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    sub.add_argument("--machine", default=None, help="only this machine (its fingerprint in the store)")
    sub.add_argument("--branch", default=None, help="only runs of this branch")
    sub.add_argument("--min-change", type=_percent, default=MIN_CHANGE, metavar="PCT", help="smallest change (5%%)")
    sub.add_argument("--alpha", type=float, default=ALPHA, help=f"significance level of the test (default {ALPHA})")
    sub.add_argument("--series", action="store_true", help="print every point of each series, not only changes")
    sub.add_argument("--accepted", type=Path, default=Path(DEFAULT_ACCEPTED), help="accepted changes (TOML)")
    add_store_options(sub)
    sub.set_defaults(handler=run_show, subparser=sub)


def _percent(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / 100
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a percentage, e.g. 5%") from None
    if not 0 <= value < 10:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a percentage between 0% and 1000%")
    return value


def run_show(args: argparse.Namespace) -> int:
    from energy_bench.history.accepted import AcceptedError, load_accepted
    from energy_bench.history.changepoints import detect
    from energy_bench.history.report import format_history
    from energy_bench.history.series import build_series

    if not 0 < args.alpha < 1:
        args.subparser.error(f"--alpha {args.alpha}: expected a level between 0 and 1, e.g. 0.001")
    try:
        marks = load_accepted(args.accepted)
    except AcceptedError as exc:
        args.subparser.error(printable(str(exc)))
    runs = load_history_runs(args)
    series = [s for s in build_series(runs, args.metric) if args.pattern is None or args.pattern in s.benchmark]
    found = [(s, detect(s, min_change=args.min_change, alpha=args.alpha, accepted=marks)) for s in series]
    print(format_history(found, args.format, with_points=args.series))
    return 0


def _accept_parser(subs, name: str) -> None:
    from energy_bench.history.accepted import ANY_MACHINE, DEFAULT_ACCEPTED
    from energy_bench.history.series import METRICS

    sub = subs.add_parser(name, help="mark a change as accepted: still shown, no longer reported as open")
    sub.add_argument("benchmark", help="the benchmark's full name, as `history show` prints it")
    sub.add_argument("commit", help="the first commit after the change (a prefix is enough)")
    sub.add_argument("--metric", choices=METRICS, default="joules")
    sub.add_argument("--machine", default=ANY_MACHINE, help="only on this machine (default: every machine)")
    sub.add_argument("--reason", required=True, help="why the change is fine (kept with the mark)")
    sub.add_argument("--accepted", type=Path, default=Path(DEFAULT_ACCEPTED), help="the file of marks (TOML)")
    sub.set_defaults(handler=run_accept, subparser=sub)


def run_accept(args: argparse.Namespace) -> int:
    from energy_bench.history.accepted import Accepted, AcceptedError, append_accepted

    mark = Accepted(args.benchmark, args.machine, args.metric, args.commit, args.reason)
    try:
        append_accepted(args.accepted, [mark])
    except (AcceptedError, OSError) as exc:
        args.subparser.error(printable(str(exc)))
    print(f"accepted in {printable(str(args.accepted))}: {json.dumps(mark.__dict__, ensure_ascii=False)}")
    return 0


#: the sub-commands, in ``--help`` order: each adds its parser and sets ``handler(args) -> int``
SUBCOMMANDS = {"show": _show_parser, "accept": _accept_parser, "import": _import_parser, "export": _export_parser}
