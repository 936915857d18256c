"""A journal of finished benchmarks, so that a killed run loses nothing it finished; SIGTERM saves like Ctrl-C.

pytest-benchmark saves a run (``--benchmark-save``/``--benchmark-autosave``) only when the session ends: a run
killed by SIGKILL, the out-of-memory killer or a CI timeout loses every benchmark it finished. When a run is to be
saved, each finished benchmark's entry (the dict pytest-benchmark will save) is appended to a journal in the storage
folder, ``<storage>/<machine>/.energy-bench-journal-<pid>-<random>.jsonl``, as soon as its test is done: one JSON
line written with a single ``os.write`` on an ``O_APPEND`` descriptor, then ``fsync``. The first line is the header
the saved run needs (machine_info, commit_info, the save name) plus the writer's host, pid and, where Linux's
``/proc`` shows it, the process's start time (so that a later process given the same pid is not taken for the
writer). A session that ends
normally (or by Ctrl-C) saves the run and removes its journal; after a crash ``energy-bench recover`` turns the
journal into a saved run, and the next saving run warns that there is one to recover.

SIGTERM raises KeyboardInterrupt in the main thread while a session runs, so the run ends and is saved as after
Ctrl-C; the previous handler is restored when the session finishes.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import threading
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.utils import safe_dumps

from energy_bench.errors import EnergyBenchWarning

FORMAT = 1
PREFIX = ".energy-bench-journal-"
GLOB = f"{PREFIX}*.jsonl"
RECOVER_COMMAND = "energy-bench recover"


# ---------------------------------------------------------------------------- reading (also for the CLI)


@dataclass
class Journal:
    path: Path
    header: dict[str, Any]
    benchmarks: list[dict[str, Any]] = field(default_factory=list)
    last_datetime: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def save_name(self) -> str:
        name = str(self.header.get("save") or "recovered")
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)

    def is_live(self) -> bool:
        """Whether the process writing it still runs (on this host); journals of other hosts count as left over.

        A pid alone is not enough: after a crash the kernel may give the same pid to a new process (soon, in a
        container's small pid space), so where the header has the writer's start time it must match too."""
        pid = self.header.get("pid")
        if self.header.get("host") != platform.node() or not _is_int(pid):
            return False
        if pid != os.getpid() and not _pid_exists(pid):
            return False
        recorded = self.header.get("pid_start")
        if not _is_int(recorded):
            return True  # a journal from before start times were recorded, or from a host without /proc
        current = process_start_time(pid)
        return current is None or current == recorded


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


#: field 22 of /proc/PID/stat is the start time; counting starts at the first field after the command name
_START_TIME_FIELD = 22 - 3


def process_start_time(pid: int, proc: Path = Path("/proc")) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field 22); None where that
    cannot be read (no such process, no /proc). Two processes with one pid differ in it."""
    try:
        stat = (proc / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may itself hold spaces and parentheses: split after the last
    fields = stat[stat.rfind(b")") + 1 :].split()
    try:
        return int(fields[_START_TIME_FIELD])
    except (IndexError, ValueError):
        return None


class JournalError(ValueError):
    """A file that is not a journal (no header)."""


def read_journal(path: Path) -> Journal:
    """Parse a journal; a torn or corrupt line is skipped with a note, a missing header is a JournalError."""
    lines = path.read_bytes().split(b"\n")
    try:
        header = json.loads(lines[0])
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("energy_bench_journal") != FORMAT:
        raise JournalError(f"{path}: not an energy-bench journal (no header line)")
    journal = Journal(path, header)
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            bench = entry["benchmark"]
            if not isinstance(bench, dict) or not isinstance(bench.get("fullname"), str):
                raise ValueError("no benchmark")
        except (ValueError, KeyError, TypeError):
            journal.notes.append(f"{path}: line {number} is incomplete or corrupt: skipped")
            continue
        journal.benchmarks.append(bench)
        journal.last_datetime = entry.get("datetime") or journal.last_datetime
    return journal


def find_journals(folder: Path) -> list[Path]:
    return sorted(folder.glob(GLOB)) if folder.is_dir() else []


def leftovers(folder: Path) -> list[Journal]:
    """Journals in ``folder`` whose writer is gone (unreadable files are left alone here)."""
    found = []
    for path in find_journals(folder):
        try:
            journal = read_journal(path)
        except (OSError, JournalError):
            continue
        if not journal.is_live():
            found.append(journal)
    return found


# ---------------------------------------------------------------------------- writing


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class JournalWriter:
    """Appends the session's finished benchmarks to the journal (opened at the first one)."""

    def __init__(self, config: pytest.Config, bench_session: Any, folder: Path) -> None:
        self.config = config
        self.bench_session = bench_session
        self.folder = folder
        self.path: Path | None = None
        self.fd: int | None = None
        self.seen = 0  # entries of bench_session.benchmarks already looked at
        self.broken = False

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        benchmarks = self.bench_session.benchmarks
        new, self.seen = benchmarks[self.seen :], len(benchmarks)
        entries = [b.as_dict(include_data=self.bench_session.save_data) for b in new if not b.has_error]
        if entries and not self.broken:
            try:
                self._append(entries)
            except OSError as exc:  # a full or read-only storage: the run goes on, saved only at its end
                self.broken = True
                warnings.warn(
                    f"benchmark journal {self.path or self.folder} not written ({exc.strerror or exc}):"
                    " a crash would lose this run's finished benchmarks",
                    EnergyBenchWarning,
                    stacklevel=1,
                )

    def _append(self, entries: list[dict[str, Any]]) -> None:
        if self.fd is None:
            self._open()
        for entry in entries:
            line = safe_dumps({"datetime": _now(), "benchmark": entry}, ensure_ascii=True) + "\n"
            os.write(self.fd, line.encode())  # one write per line: appends never interleave or tear a line
        os.fsync(self.fd)

    def _open(self) -> None:
        from pytest_benchmark import __version__

        bs, hook = self.bench_session, self.config.hook
        commit_info = hook.pytest_benchmark_generate_commit_info(config=self.config)
        hook.pytest_benchmark_update_commit_info(config=self.config, commit_info=commit_info)
        header = {
            "energy_bench_journal": FORMAT,
            "host": platform.node(),
            "pid": os.getpid(),
            **_start_time_field(),
            "save": bs.save or bs.autosave,
            "started": _now(),
            "version": __version__,
            "machine_info": bs.get_machine_info(),
            "commit_info": commit_info,
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        self.path = path
        os.write(self.fd, (safe_dumps(header, ensure_ascii=True) + "\n").encode())

    def close(self, saved: bool) -> None:
        """Close the journal; remove it when the run was saved."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        if saved and self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _start_time_field() -> dict[str, int]:
    """``{"pid_start": ...}`` for the header, or nothing where this system has no /proc to read it from."""
    started = process_start_time(os.getpid())
    return {} if started is None else {"pid_start": started}


def journal_folder(bench_session: Any) -> Path | None:
    """Where this session's journal goes: the storage's machine folder, when a file storage run is to be saved."""
    if bench_session is None or bench_session.disabled or not (bench_session.save or bench_session.autosave):
        return None
    storage = bench_session.storage
    if not isinstance(getattr(storage, "path", None), Path):  # elasticsearch storage: nothing local to journal
        return None
    machine = getattr(storage, "default_machine_id", None)
    return storage.path / machine if machine else storage.path


# ---------------------------------------------------------------------------- SIGTERM


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}")


# ---------------------------------------------------------------------------- hooks

WRITER_KEY = pytest.StashKey[JournalWriter | None]()
#: (the SIGTERM handler before the session,): a tuple, because signal.signal may return None
PREVIOUS_SIGTERM_KEY = pytest.StashKey[tuple]()


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    if threading.current_thread() is threading.main_thread():
        config.stash[PREVIOUS_SIGTERM_KEY] = (signal.signal(signal.SIGTERM, _interrupt),)
    folder = journal_folder(getattr(config, "_benchmarksession", None))
    config.stash[WRITER_KEY] = None
    if folder is None:
        return
    for journal in leftovers(folder):
        storage = config.getoption("benchmark_storage", None) or "./.benchmarks"
        config.issue_config_time_warning(
            EnergyBenchWarning(
                f"{journal.path}: an interrupted run left {len(journal.benchmarks)} finished benchmark(s) unsaved;"
                f" save them as a run with `{RECOVER_COMMAND} --storage {storage}`"
            ),
            stacklevel=2,
        )
    writer = JournalWriter(config, config._benchmarksession, folder)
    config.stash[WRITER_KEY] = writer
    config.pluginmanager.register(writer, "energy-bench-journal")


def pytest_sessionfinish(session: pytest.Session) -> None:
    # pytest-benchmark saves in its hookwrapper before the plain hooks run; if saving raised, this is not reached
    # and the journal stays for `energy-bench recover`.
    writer = session.config.stash.get(WRITER_KEY, None)
    if writer is not None:
        writer.close(saved=True)


@pytest.hookimpl(wrapper=True)
def pytest_unconfigure(config: pytest.Config):
    try:
        return (yield)
    finally:
        writer = config.stash.get(WRITER_KEY, None)
        if writer is not None:
            writer.close(saved=False)
            config.stash[WRITER_KEY] = None
        previous = config.stash.get(PREVIOUS_SIGTERM_KEY, None)
        if previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous[0] if previous[0] is not None else signal.SIG_DFL)
            del config.stash[PREVIOUS_SIGTERM_KEY]
