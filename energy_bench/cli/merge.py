"""``energy-bench merge``: join the saved JSON of a run's shards (``--energy-shard=K/N``) into one run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from energy_bench.cli.compare import add_storage_options, open_storage
from energy_bench.runs.merge import MergeError, merge_runs, read_shard_run, save_run, write_run

EPILOG = """examples:
  energy-bench merge shard-*.json -o run.json     one file
  energy-bench merge shard-*.json --save          the next run in the benchmark storage, as --benchmark-autosave
  energy-bench merge a.json b.json > run.json     standard output
"""


def add_parser(commands) -> None:
    merge = commands.add_parser(
        "merge",
        help="join the saved runs of shards (--energy-shard=K/N) into one run",
        description="Join the saved JSON files of a run's shards into one run: the benchmarks of all shards, the "
        "machine and commit of the first. Shards with other meters, devices, study profiles or commits are refused "
        "unless --force; a benchmark in two files always is.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    merge.add_argument("files", nargs="+", metavar="FILE", help="the shards' JSON files (--benchmark-json)")
    where = merge.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", type=Path, metavar="OUT", help="write the merged run to OUT")
    where.add_argument(
        "--save", action="store_true", help="save the merged run as the next run in the storage (see --storage)"
    )
    add_storage_options(merge)
    merge.add_argument(
        "--force", action="store_true", help="merge even shards with other meters, devices, profiles or commits"
    )
    merge.set_defaults(handler=run_merge, subparser=merge)


def run_merge(args: argparse.Namespace) -> int:
    try:
        merged = merge_runs([read_shard_run(path) for path in args.files], force=args.force)
    except MergeError as exc:
        args.subparser.error(str(exc))
    for note in merged["machine_info"]["energy"].get("notes", []):
        print(f"energy-bench merge: note: {note}", file=sys.stderr)
    if not args.save and args.output is None:
        print(json.dumps(merged, indent=4))
        return 0
    try:
        if args.save:
            path = save_run(merged, open_storage(args))
        else:
            path = args.output
            write_run(merged, path)
    except OSError as exc:
        args.subparser.error(f"cannot write the merged run: {exc}")
    print(f"energy-bench merge: {len(merged['benchmarks'])} benchmark(s) from {len(args.files)} file(s) in {path}")
    return 0
