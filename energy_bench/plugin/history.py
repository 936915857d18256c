"""The history store in a pytest session: every run pytest-benchmark saves also goes into it, and ``history:...``
baselines of the gate are read from it.

The store is ``--energy-history`` (ini ``energy_history``), else ``$ENERGY_BENCH_HISTORY`` (a CI secret), else the
SQLite file ``history.sqlite`` in pytest-benchmark's storage; ``none`` turns it off. A store that cannot be written
(unreachable, refused, read-only, full, a newer schema) costs one line: the run's JSON file is saved by
pytest-benchmark before this runs, and ``energy-bench history import`` adds it later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from energy_bench import __version__
from energy_bench.plugin import options
from energy_bench.runs.store import ENV_VAR, StoreError, display, open_store, parse_url
from energy_bench.runs.store.files import RUN_GLOB, storage_path
from energy_bench.runs.store.keys import ENERGY_BENCH_KEY, machine_fingerprint

#: the runner label's environment variable (CI sets it per fleet)
RUNNER_ENV_VAR = "ENERGY_BENCH_RUNNER_LABEL"
#: the value that turns the history store off
OFF = "none"
#: the run files present at session start: those found at the end besides them are this session's saves
EXISTING_KEY = pytest.StashKey[set[Path]]()


def history_url(config: pytest.Config) -> str | None:
    """The store's URL as configured, None for the default SQLite file, ``OFF`` when turned off."""
    return options.get(config, "energy_history") or os.environ.get(ENV_VAR) or None


def runner_label(config: pytest.Config) -> str | None:
    return options.get(config, "energy_runner_label") or os.environ.get(RUNNER_ENV_VAR) or None


def _storage_option(config: pytest.Config) -> str | None:
    return config.getoption("benchmark_storage", None)


def open_session_store(config: pytest.Config):
    """The store of this session (:func:`energy_bench.runs.store.open_store`); StoreError when it cannot open."""
    return open_store(history_url(config), _storage_option(config))


def _saving(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_save", None) or config.getoption("benchmark_autosave", None))


def _run_folder(config: pytest.Config) -> Path | None:
    bench_session = getattr(config, "_benchmarksession", None)
    if bench_session is None:
        return None
    try:
        return storage_path(_storage_option(config)) / bench_session.machine_id
    except ValueError:  # not file storage: pytest-benchmark's elasticsearch keeps its own
        return None


def pytest_configure(config: pytest.Config) -> None:
    url = history_url(config)
    if url and url != OFF and "://" in url and not url.startswith("file://"):
        try:
            parse_url(url)  # a malformed URL is a usage error before any test runs; nothing is connected yet
        except StoreError as exc:
            raise pytest.UsageError(f"--energy-history: {exc}") from None


def pytest_sessionstart(session: pytest.Session) -> None:
    folder = _run_folder(session.config)
    session.config.stash[EXISTING_KEY] = set(folder.glob(RUN_GLOB)) if folder and folder.is_dir() else set()


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    facts: dict[str, Any] = {"version": __version__}
    label = runner_label(config)
    if label:
        facts["runner_label"] = label
    machine_info[ENERGY_BENCH_KEY] = facts


def pytest_sessionfinish(session: pytest.Session) -> None:
    # A plain hook: pytest-benchmark's wrapper has saved this session's file before it runs.
    config = session.config
    if hasattr(config, "workerinput") or not _saving(config) or history_url(config) == OFF:
        return
    folder = _run_folder(config)
    if folder is None or not folder.is_dir():
        return
    new = sorted(set(folder.glob(RUN_GLOB)) - config.stash.get(EXISTING_KEY, set()))
    if new:
        _add_runs(config, new)


def _add_runs(config: pytest.Config, paths: list[Path]) -> None:
    import json

    write = _writer(config)
    try:
        store = open_session_store(config)
    except StoreError as exc:
        write(_not_kept(exc, paths), yellow=True)
        return
    try:
        for path in paths:
            text = path.read_text(encoding="utf-8")
            store.add(json.loads(text), origin=str(path), text=text)
    except (StoreError, OSError, ValueError) as exc:
        write(_not_kept(exc, paths), yellow=True)
    finally:
        store.close()


def _not_kept(exc: Exception, paths: list[Path]) -> str:
    files = " ".join(str(p) for p in paths)
    return (
        f"energy-bench: the run was not added to the history store ({exc}); its file is saved: {files} (add it "
        f"later with `energy-bench history import {files}`)"
    )


def _writer(config: pytest.Config):
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        return reporter.write_line
    import sys

    return lambda line, **markup: print(line, file=sys.stderr)


def current_machine(config: pytest.Config) -> str:
    """This machine's fingerprint in the store, from the same fields the store keys saved runs by."""
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

    return machine_fingerprint(pytest_benchmark_generate_machine_info())


def current_branch(config: pytest.Config) -> str | None:
    from pytest_benchmark.utils import get_commit_info

    branch = get_commit_info(config.getoption("benchmark_project_name", None)).get("branch")
    return branch if isinstance(branch, str) and branch != "(unknown)" else None


__all__ = ["current_branch", "current_machine", "display", "open_session_store", "runner_label"]
