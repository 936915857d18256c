"""``energy-bench fetch-weights``: download the study's pretrained torchvision weights into torch.hub's cache."""

from __future__ import annotations

import argparse
import sys


def add_parser(commands) -> None:
    fetch = commands.add_parser("fetch-weights", help="download the study's pretrained weights into the cache")
    fetch.add_argument("models", nargs="*", metavar="MODEL", help="model names (default: all nine)")
    fetch.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from energy_bench.errors import EnergyBenchError
    from energy_bench.study import weights, zoo  # lazy: only this command needs the study

    try:
        paths = weights.fetch_weights(args.models or list(zoo.MODEL_NAMES))
    except (EnergyBenchError, ValueError, LookupError, OSError, RuntimeError) as exc:
        print(f"energy-bench fetch-weights: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0
