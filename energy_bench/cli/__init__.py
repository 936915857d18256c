"""The ``energy-bench`` command: one sub-command per module of this package.

Exit codes: 0 fine, 1 a regression under ``--fail`` (or a failed fetch, or a failed head run of ``ab``), 2 bad
arguments, runs that cannot be compared, or a journal that cannot be recovered (argparse's convention), 130 ``ab``
or ``bisect`` interrupted. ``bisect``: 0 the first bad commit was found, 1 it was not (BAD passes the gate, or
skipped commits leave a range), 2 bad arguments (an unknown commit, GOOD not an ancestor of BAD, a bad ``--fail``)
or a GOOD that cannot be measured.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from energy_bench.cli import ab, bisect, compare, doctor, history, merge, publish, recover, report, run, weights

#: sub-command modules, in ``--help`` order: each has ``add_parser(commands)``, which sets ``handler(args) -> int``
COMMANDS = (compare, report, ab, bisect, merge, recover, run, weights, history, publish, doctor)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="energy-bench", description="energy-bench: saved runs, shards and study weights."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = None
    # energy-bench ab BASE [HEAD] -- <pytest args>, energy-bench bisect GOOD BAD -- <pytest args>
    if argv[:1] in (["ab"], ["bisect"]) and "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    if argv[:1] == ["history"]:
        argv = ["history", *history.default_show(argv[1:])]
    args = make_parser().parse_args(argv)
    if passthrough is not None:
        args.pytest_args = passthrough
    try:
        return args.handler(args)
    except BrokenPipeError:
        # The reader went away (``energy-bench compare | head``): no traceback; stdout is pointed at /dev/null so that
        # the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
