"""``energy-bench recover``: turn the journal of a killed run into a saved run (see energy_bench.plugin.journal).

Each journal left in the storage by a process that is gone becomes ``<machine>/NNNN_<save name>.json`` (the next
free number), the same JSON pytest-benchmark writes, holding every benchmark that finished before the crash; then
the journal is removed. Journals of running processes are left alone. Exit codes: 0 done (or nothing to do),
2 a journal that cannot be read or a run that cannot be written (the journal is kept).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path

from energy_bench.runs.store.files import DEFAULT_STORAGE, storage_path

_RUN_NUMBER = re.compile(r"^(\d{4})_.*\.json$")


def add_parser(commands) -> None:
    recover = commands.add_parser(
        "recover",
        help="save the finished benchmarks of a killed run (from its journal)",
        description="Save the benchmarks a killed or crashed run finished, from the journal it left in the storage.",
    )
    recover.add_argument(
        "--storage",
        "-s",
        default=DEFAULT_STORAGE,
        metavar="URI",
        help=f"pytest-benchmark storage: file://PATH or PATH (default {DEFAULT_STORAGE})",
    )
    recover.set_defaults(handler=run)


def next_number(root: Path, folder: Path) -> int:
    """pytest-benchmark's numbering: one more than the highest NNNN_ run in the machine folder or the root."""
    numbers = [
        int(match.group(1))
        for where in {root, folder}
        if where.is_dir()
        for path in where.iterdir()
        if (match := _RUN_NUMBER.match(path.name))
    ]
    return max(numbers, default=0) + 1


def saved_run(journal) -> dict:
    """The run pytest-benchmark would have saved, with the benchmarks the journal holds."""
    header = journal.header
    return {
        "machine_info": header.get("machine_info", {}),
        "commit_info": header.get("commit_info", {}),
        "benchmarks": journal.benchmarks,
        "datetime": journal.last_datetime or header.get("started"),
        "version": header.get("version"),
    }


def write_run(root: Path, folder: Path, name: str, text: str) -> Path:
    """Write ``text`` as the next numbered run; never overwrites a run saved meanwhile."""
    fd, tmp = tempfile.mkstemp(prefix=".recover-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        while True:
            target = folder / f"{next_number(root, folder):04d}_{name}.json"
            try:
                os.link(tmp, target)  # fails if a run took that number meanwhile
                return target
            except FileExistsError:
                continue
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def recover_one(root: Path, path: Path) -> str | None:
    """Recover one journal; returns a line to print, or None when it belongs to a running process."""
    from pytest_benchmark.utils import safe_dumps

    from energy_bench.plugin.journal import read_journal

    journal = read_journal(path)
    for note in journal.notes:
        print(f"energy-bench recover: {note}", file=sys.stderr)
    if journal.is_live():
        return None
    if not journal.benchmarks:
        path.unlink()
        return f"{path}: no finished benchmark to save; journal removed"
    text = safe_dumps(saved_run(journal), ensure_ascii=True, indent=4)
    target = write_run(root, path.parent, journal.save_name, text)
    path.unlink()
    return f"{target}: saved {len(journal.benchmarks)} benchmark(s) of an interrupted run"


def run(args: argparse.Namespace) -> int:
    from energy_bench.plugin.journal import GLOB, JournalError

    try:
        root = storage_path(args.storage)
    except ValueError as exc:
        print(f"energy-bench recover: {exc}", file=sys.stderr)
        return 2
    journals = sorted([*root.glob(GLOB), *root.glob(f"*/{GLOB}")]) if root.is_dir() else []
    if not journals:
        print(f"no journal to recover in {root}")
        return 0
    code = 0
    for path in journals:
        try:
            line = recover_one(root, path)
        except (OSError, JournalError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(f"energy-bench recover: {path}: {reason}; the journal is kept", file=sys.stderr)
            code = 2
            continue
        print(line if line is not None else f"{path}: still being written by a running process; left alone")
    return code
