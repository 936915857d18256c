"""``energy-bench publish SITE/``: the saved history as a static site (:mod:`energy_bench.history.publish`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from energy_bench.cli.history import add_store_options, load_history_runs
from energy_bench.runs.text import printable

EPILOG = """examples:
  energy-bench publish dashboard/               every run in the history store (.benchmarks/history.sqlite)
  energy-bench publish dashboard/ --history postgresql://ci@db.example/energy
  python -m http.server -d dashboard/           or open dashboard/index.html as a file
"""


def add_parser(commands) -> None:
    publish = commands.add_parser(
        "publish",
        help="the saved history as a static site (plots over commits, change points, the study)",
        description="Write a static site of every saved run: an index of benchmarks with their latest value, "
        "trend and open change points, a page per benchmark with joules, time and accuracy over commits, and the "
        "study's page. It works from a file or any static host, with no network when viewed (plotly.js "
        "ships inside energy-bench).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    publish.add_argument("site", type=Path, metavar="SITE", help="folder to write the site into (created)")
    add_store_options(publish)
    publish.add_argument("--title", default="energy-bench history", help="the site's title")
    publish.set_defaults(handler=run_publish, subparser=publish)


def run_publish(args: argparse.Namespace) -> int:
    from energy_bench.history.publish import PublishError, publish

    runs = load_history_runs(args, readable_machines=True)
    if not runs:
        args.subparser.error(
            "no runs in the history store (save some with --benchmark-autosave, or add saved files with "
            "`energy-bench history import .benchmarks`)"
        )
    try:
        published = publish(runs, args.site, title=args.title)
    except PublishError as exc:
        print(f"energy-bench publish: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {printable(str(published.index))}: {published.pages} benchmark pages, {published.points} points, "
        f"{published.changes} change points, {published.files} files ({published.bytes / 2**20:.1f} MiB), "
        f"from {len(runs)} runs"
    )
    return 0
