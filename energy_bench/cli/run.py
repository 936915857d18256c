"""``energy-bench run --ray``: one run's shards on a Ray cluster (or a local Ray), merged and saved as one run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from energy_bench.cli.compare import add_storage_options, open_storage

EPILOG = """examples:
  energy-bench run --ray --shards 2 -- benchmarks/ --energy-meter=estimate
  energy-bench run --ray auto --shards 8 --gpus-per-shard 1 -- benchmarks/test_compression.py --energy-profile=paper
  energy-bench run --ray ray://head:10001 --shards 4 --gpus-per-shard 2 -o run.json -- benchmarks/

Each shard runs `python -m pytest ARGS --energy-shard=K/N` as a Ray task; the merged run is saved in the
benchmark storage (as --benchmark-autosave does) or written to -o FILE.
"""


def add_parser(commands) -> None:
    run = commands.add_parser(
        "run",
        help="run a session's shards as Ray tasks and save them as one run",
        description="Split a pytest session into N shards (--energy-shard=K/N), run them as Ray tasks, each in "
        "its own pytest with its own GPUs and CPUs, and merge their results into one saved run.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        required=True,
        help="Ray cluster address (auto, ray://HOST:PORT, HOST:PORT); without one, a local Ray on this machine",
    )
    run.add_argument("--shards", type=int, required=True, metavar="N", help="number of shards (Ray tasks)")
    run.add_argument("--gpus-per-shard", type=int, default=0, metavar="G", help="GPUs per shard (default 0)")
    run.add_argument(
        "--cpus-per-shard", type=int, default=1, metavar="C", help="CPUs per shard, and its threads (default 1)"
    )
    run.add_argument(
        "--runtime-env",
        type=parse_runtime_env,
        metavar="JSON",
        help='Ray runtime environment (default with an ADDRESS: {"working_dir": "."}, this directory uploaded)',
    )
    run.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write the merged run to FILE instead of the storage"
    )
    run.add_argument(
        "--shards-dir", type=Path, metavar="DIR", help="keep each shard's JSON in DIR (default: only when it fails)"
    )
    add_storage_options(run)
    run.add_argument("--force", action="store_true", help="merge even shards with other meters or devices")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER, metavar="-- PYTEST_ARGS", help="arguments for pytest")
    run.set_defaults(handler=run_ray, subparser=run)


def parse_runtime_env(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('a JSON object is expected, e.g. {"working_dir": "."}')
    return value


def say(message: str) -> None:
    print(f"energy-bench run: {message}", file=sys.stderr, flush=True)


def run_ray(args: argparse.Namespace) -> int:
    from energy_bench.distributed import ray_driver
    from energy_bench.runs.merge import MergeError, merge_runs, parse_shard_run, save_run, write_run

    pytest_args = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    plan = ray_driver.Plan(
        shards=args.shards,
        gpus_per_shard=args.gpus_per_shard,
        cpus_per_shard=args.cpus_per_shard,
        pytest_args=tuple(pytest_args),
        address=None if args.ray == "local" else args.ray,
        runtime_env=args.runtime_env,
    )
    storage = open_storage(args)
    try:
        results = ray_driver.run_shards(plan, say)
    except ray_driver.DriverError as exc:
        args.subparser.error(str(exc))
    folder = args.shards_dir or ray_driver.temporary_folder()
    ray_driver.keep_shards(results, folder)
    saved = [r for r in results if r.json is not None]
    if not saved:
        say(f"no shard saved a run (pytest exit codes: {', '.join(str(r.returncode) for r in results)})")
        if args.shards_dir is None:
            ray_driver.discard(folder)
        return ray_driver.exit_code(results) or 1
    try:
        merged = merge_runs(
            [parse_shard_run(json.loads(r.json), f"shard {r.shard}", r.where) for r in saved], force=args.force
        )
        if args.output is not None:
            write_run(merged, args.output)
            path = args.output
        else:
            path = save_run(merged, storage)
    except (MergeError, ValueError, OSError) as exc:
        say(f"{exc}; the shards' runs are in {folder} (energy-bench merge --force {folder}/*.json)")
        return 2
    for note in merged["machine_info"]["energy"].get("notes", []):
        say(f"note: {note}")
    if args.shards_dir is None:
        ray_driver.discard(folder)
    say(f"{len(merged['benchmarks'])} benchmark(s) from {len(saved)} shard(s) saved in {path}")
    return ray_driver.exit_code(results)
