"""Where saved runs are kept and found, apart from how a run is parsed (:mod:`~energy_bench.runs.parse`) and pooled
(:mod:`~energy_bench.runs.pool`).

Two kinds of store answer the same questions (:class:`RunStore`): pytest-benchmark's files
(:mod:`~energy_bench.runs.store.files`) and the history database (:mod:`~energy_bench.runs.store.sql`, SQLite or
PostgreSQL). The gate, ``compare`` and the history commands ask "the last N runs of this machine and branch" or
"every run of one benchmark" without knowing which answers; :func:`open_store` picks the engine from a URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from energy_bench.errors import EnergyBenchError
from energy_bench.runs.parse import SavedRun
from energy_bench.runs.store.keys import mask_password

#: the history's SQLite file, beside pytest-benchmark's runs in its storage folder
DEFAULT_FILE = "history.sqlite"
#: the environment variable that names the history store (a CI secret, for a PostgreSQL URL with its password)
ENV_VAR = "ENERGY_BENCH_HISTORY"
#: ``history:last:N``, ``history:latest``, ``history:<label or commit prefix>``: runs from the history store
HISTORY_PREFIX = "history:"
_LAST = re.compile(r"^last:(?P<count>[0-9]{1,6})$")


class StoreError(EnergyBenchError):
    """A store that cannot be opened, read or written; one line, naming the store with its password masked."""


@dataclass(frozen=True)
class Machine:
    """A machine with runs in a store: its key (fingerprint, or pytest-benchmark's machine id for files)."""

    fingerprint: str
    name: str
    runs: int


class RunStore(Protocol):
    """The questions every store answers. Runs come back oldest first (commit time, then save time)."""

    #: where the store is, fit to print: a database URL with its password masked
    display_url: str

    def add(self, data: Mapping[str, Any], *, origin: str | None = None, text: str | None = None) -> bool:
        """Keep one run (pytest-benchmark's JSON, as saved) in one transaction; False when it was already kept.

        ``origin``: where the run came from (a file path: its name is the run's label); ``text``: the file as saved.
        """

    def last(
        self,
        count: int,
        *,
        machine: str | None = None,
        branch: str | None = None,
        before: str | None = None,
        runner: str | None = None,
    ) -> list[SavedRun]:
        """The ``count`` newest runs of ``machine`` (None: any) on ``branch`` (None: any), oldest first.

        ``before``: a run's key (see :attr:`SavedRun.label`) whose run and later ones are left out. ``runner``: only
        runs saved with this runner label (``--energy-runner-label``).
        """

    def runs(
        self,
        *,
        machine: str | None = None,
        branch: str | None = None,
        benchmark: str | None = None,
        runner: str | None = None,
    ) -> list[SavedRun]:
        """Every run (of ``machine``, on ``branch``), oldest first; with ``benchmark`` only that benchmark's record."""

    def find(
        self, spec: str, *, machine: str | None = None, branch: str | None = None, runner: str | None = None
    ) -> SavedRun:
        """One run: ``latest``, its label, or a commit prefix (the newest match); ``RunNotFound`` when none."""

    def machines(self) -> list[Machine]:
        """The machines that have runs in the store."""

    def close(self) -> None:
        """Release connections and files."""


# ---------------------------------------------------------------------------- opening


def default_path(storage: str | None) -> Path:
    """The history's SQLite file for a ``--benchmark-storage`` value: ``<storage>/history.sqlite``."""
    from energy_bench.runs.store.files import storage_path

    return storage_path(storage) / DEFAULT_FILE


def display(url: str) -> str:
    """``url`` fit to print: its password masked, even when it does not parse."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return mask_password(url)


def parse_url(url: str):
    """A SQLAlchemy URL for a store URL (``sqlite:///PATH``, ``postgresql://...``, a plain path to a SQLite file);
    :class:`StoreError` for anything else. ``postgresql://`` uses the psycopg 3 driver."""
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    if "://" not in url:
        path = Path(url)
        if path.is_dir():
            raise StoreError(f"{url}: a folder; give a SQLite file (e.g. {path / DEFAULT_FILE}) or a database URL")
        return URL.create("sqlite", database=str(path))
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StoreError(f"{mask_password(url)}: not a database URL (e.g. postgresql://user@host/db)") from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        driver = parsed.get_driver_name() if "+" in parsed.drivername else "psycopg"
        return parsed.set(drivername=f"postgresql+{driver}")
    if backend != "sqlite":
        shown = parsed.render_as_string(hide_password=True)
        raise StoreError(f"{shown}: unsupported database {backend!r}; use sqlite:///PATH or postgresql://...")
    return parsed


def _check_sqlite_folder(url, create: bool) -> None:
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    folder = Path(database).parent
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{database}: cannot create its folder ({exc.strerror or exc})") from None
    elif not folder.is_dir():
        raise StoreError(f"{database}: no such folder {folder}")


def open_store(url: str | None, storage: str | None = None) -> RunStore:
    """The store at ``url``: None (or empty) is the SQLite file beside pytest-benchmark's ``storage``
    (``.benchmarks/history.sqlite``); ``file://DIR`` is pytest-benchmark's own files; ``sqlite:///PATH`` or a path
    is a SQLite file; ``postgresql://user:password@host/db`` a PostgreSQL database.

    :class:`StoreError` (one line, password masked) when the URL is malformed, the store unreachable or refused,
    or its schema newer than this energy-bench.
    """
    if url and url.startswith("file://"):
        from energy_bench.runs.store.files import FileStore, storage_path

        return FileStore(storage_path(url))
    from energy_bench.runs.store.sql import SqlStore

    if not url:
        parsed = parse_url(str(default_path(storage)))
        _check_sqlite_folder(parsed, create=True)
    else:
        parsed = parse_url(url)
        if parsed.get_backend_name() == "sqlite":
            _check_sqlite_folder(parsed, create=False)
    return SqlStore(parsed)


# ---------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class HistorySpec:
    """A run spec that reads the history store: ``last`` newest runs, or the one run ``run`` names."""

    text: str
    last: int | None = None
    run: str | None = None


def parse_history_spec(spec: str) -> HistorySpec | None:
    """``history:last:N``, ``history:latest`` or ``history:<label|commit>``; None for a spec of the files.

    ``RunSpecError`` for ``history:`` alone or ``history:last:0``.
    """
    from energy_bench.runs.store.files import RunSpecError

    if not spec.startswith(HISTORY_PREFIX):
        return None
    rest = spec[len(HISTORY_PREFIX) :]
    if rest.startswith("last:"):
        match = _LAST.match(rest)
        if not match or int(match["count"]) < 1:
            raise RunSpecError(f"{spec!r}: expected history:last:N with a whole number N >= 1, e.g. history:last:5")
        return HistorySpec(spec, last=int(match["count"]))
    if not rest:
        raise RunSpecError(f"{spec!r}: expected history:last:N, history:latest or history:<run label or commit>")
    return HistorySpec(spec, run=rest)
