"""The history store on SQLite or PostgreSQL: one code path (SQLAlchemy Core), parameterized statements only.

Concurrent writers (pytest-xdist workers, shards, CI jobs) are safe: SQLite runs in WAL mode with a busy timeout and
takes its write lock when a write transaction begins (``BEGIN IMMEDIATE``, so two writers never deadlock upgrading a
read lock); PostgreSQL runs each run in its own transaction, and ``INSERT ... ON CONFLICT DO NOTHING`` keys machines,
commits, benchmarks and runs (by content hash), so a run added twice, or by two writers at once, is kept once.
A run is one transaction: a writer killed inside it leaves the run absent, never partial.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, inspect, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from energy_bench.runs.parse import RunLoadError, SavedRun, run_from_json
from energy_bench.runs.store import Machine, StoreError
from energy_bench.runs.store import schema as s
from energy_bench.runs.store.keys import mask_password
from energy_bench.runs.store.rows import RunRows, run_rows

#: seconds a SQLite writer waits for another's lock, and a PostgreSQL client for the server to answer a connect
BUSY_TIMEOUT_S = 60
CONNECT_TIMEOUT_S = 10
#: an arbitrary constant: the PostgreSQL advisory lock taken while a store's tables are created or migrated
_SCHEMA_LOCK = 0x6562_5F73
#: records whose benchmarks are asked for at once (well under every engine's limit on bound parameters)
_CHUNK = 500


def _reason(exc: BaseException, secret: str | None) -> str:
    """One line of what went wrong: the driver's own message (not SQLAlchemy's with its statement), no password."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split()) or type(orig).__name__
    text = mask_password(text)
    if secret:
        text = text.replace(secret, "***")
    return text[:500]


class SqlStore:
    """Runs in a SQLite file or a PostgreSQL database (see :func:`energy_bench.runs.store.open_store`)."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self.display_url = url.render_as_string(hide_password=True)
        self._secret = url.password if url.password else None
        self.engine = self._engine(url)
        self.dialect = self.engine.dialect.name
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        with self._errors("cannot open"):
            self._check_schema()

    # ------------------------------------------------------------------------ engine and transactions

    @staticmethod
    def _engine(url: URL) -> Engine:
        if url.get_backend_name() == "sqlite":
            engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S}, poolclass=NullPool)
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        connect_args = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "energy-bench"}
        return create_engine(url, connect_args=connect_args, poolclass=NullPool)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"{self.display_url}: {what}: {_reason(exc, self._secret)}") from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE), committed at the end, rolled back on any error."""
        with self.engine.connect().execution_options(energy_bench_write=True) as conn, conn.begin():
            yield conn

    def _check_schema(self) -> None:
        with self.engine.connect() as conn:
            version = _read_version(conn)
        if version == s.SCHEMA_VERSION:
            return
        if version is not None and version > s.SCHEMA_VERSION:
            raise StoreError(_newer(self.display_url, version))
        with self._write() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            version = _read_version(conn)  # another writer may have created or upgraded it meanwhile
            if version is None:
                s.metadata.create_all(conn)
                conn.execute(s.schema_version.insert().values(version=s.SCHEMA_VERSION))
                return
            if version > s.SCHEMA_VERSION:
                raise StoreError(_newer(self.display_url, version))
            while version < s.SCHEMA_VERSION:
                s.MIGRATIONS[version](conn)
                version += 1
            conn.execute(s.schema_version.update().values(version=version))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> SqlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------ writing

    def add(self, data: Mapping[str, Any], *, origin: str | None = None, text: str | None = None) -> bool:
        """Keep one run in one transaction; False when a run with the same content is kept already.

        ``text``: the run's file as saved (kept byte for byte); ``origin``: its path (its name becomes the label).
        :class:`RunLoadError` when ``data`` is not a run, :class:`StoreError` when the store cannot take it.
        """
        rows = run_rows(data, text, origin)
        with self._errors("cannot add the run"), self._write() as conn:
            return self._add_rows(conn, rows)

    def _add_rows(self, conn: Connection, rows: RunRows) -> bool:
        machine_id = self._key(conn, s.machines, rows.machine, ("fingerprint",))
        commit_id = self._key(conn, s.commits, rows.commit, ("project", "sha")) if rows.commit else None
        statement = (
            self._insert(s.runs)
            .values(**rows.run, machine_id=machine_id, commit_id=commit_id)
            .on_conflict_do_nothing(index_elements=["content_hash"])
            .returning(s.runs.c.id)
        )
        run_id = conn.execute(statement).scalar()
        if run_id is None:
            return False
        conn.execute(s.run_json.insert().values(run_id=run_id, text=rows.text))
        benchmark_ids = self._benchmark_ids(conn, list(rows.benchmarks.values()))
        records = [
            {**record, "run_id": run_id, "benchmark_id": benchmark_ids[fullname]}
            for fullname, record in rows.records.items()
        ]
        if records:
            conn.execute(s.records.insert(), records)
        return True

    def _key(self, conn: Connection, table, row: Mapping[str, Any], unique: Sequence[str]) -> int:
        """The id of the row with ``row``'s unique columns, inserted first when absent (race-free on both engines)."""
        conn.execute(self._insert(table).values(**row).on_conflict_do_nothing(index_elements=list(unique)))
        where = [table.c[name] == row[name] for name in unique]
        return conn.execute(select(table.c.id).where(*where)).scalar_one()

    def _benchmark_ids(self, conn: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
        if not rows:
            return {}
        table = s.benchmarks
        conn.execute(self._insert(table).on_conflict_do_nothing(index_elements=["project", "fullname"]), rows)
        ids: dict[str, int] = {}
        project = rows[0]["project"]
        names = [row["fullname"] for row in rows]
        for start in range(0, len(names), _CHUNK):
            chunk = names[start : start + _CHUNK]
            query = select(table.c.fullname, table.c.id).where(table.c.project == project, table.c.fullname.in_(chunk))
            ids.update(dict(conn.execute(query).all()))
        return ids

    # ------------------------------------------------------------------------ reading

    def _filters(self, machine: str | None, branch: str | None, runner: str | None) -> list:
        where = []
        if machine is not None:
            where.append(s.machines.c.fingerprint == machine)
        if branch is not None:
            where.append(s.runs.c.branch == branch)
        if runner is not None:
            where.append(s.runs.c.runner_label == runner)
        return where

    @staticmethod
    def _order(descending: bool = False) -> list:
        columns = (s.runs.c.order_at, s.runs.c.saved_at, s.runs.c.id)
        return [c.desc() for c in columns] if descending else list(columns)

    def last(
        self,
        count: int,
        *,
        machine: str | None = None,
        branch: str | None = None,
        before: str | None = None,
        runner: str | None = None,
    ) -> list[SavedRun]:
        """The ``count`` newest runs (of ``machine``'s fingerprint, on ``branch``, of ``runner`` label), oldest first.

        ``before``: a run's label (of those runs); it and the runs after it are left out.
        """
        where = self._filters(machine, branch, runner)
        with self._errors("cannot read"), self.engine.connect() as conn:
            if before is not None:
                where += self._before(conn, where, before)
            query = (
                select(s.runs.c.id)
                .join(s.machines, s.runs.c.machine_id == s.machines.c.id)
                .where(*where)
                .order_by(*self._order(descending=True))
                .limit(count)
            )
            ids = list(conn.execute(query).scalars())[::-1]
            return self._load(conn, ids)

    def _before(self, conn: Connection, where: list, label: str) -> list:
        """Filters leaving out the run labelled ``label`` and every later one (none when no such run)."""
        query = (
            select(s.runs.c.order_at, s.runs.c.saved_at, s.runs.c.id)
            .join(s.machines, s.runs.c.machine_id == s.machines.c.id)
            .where(*where, s.runs.c.label == label)
            .order_by(*self._order())
            .limit(1)
        )
        found = conn.execute(query).first()
        if found is None:
            return []
        return [tuple_(s.runs.c.order_at, s.runs.c.saved_at, s.runs.c.id) < tuple_(*found)]

    def _load(self, conn: Connection, ids: list[int]) -> list[SavedRun]:
        """The runs with ``ids``, parsed from their JSON as saved, in the order of ``ids``."""
        if not ids:
            return []
        query = (
            select(s.runs.c.id, s.runs.c.label, s.runs.c.number, s.machines.c.fingerprint, s.run_json.c.text)
            .join(s.run_json, s.run_json.c.run_id == s.runs.c.id)
            .join(s.machines, s.runs.c.machine_id == s.machines.c.id)
            .where(s.runs.c.id.in_(ids))
        )
        found = {row.id: row for row in conn.execute(query)}
        runs = []
        for run_id in ids:
            row = found[run_id]
            try:
                run = run_from_json(json.loads(row.text), row.label)
            except (ValueError, RunLoadError) as exc:  # a store edited by hand: say which run, keep the others
                raise StoreError(f"{self.display_url}: run {row.label} is unreadable ({exc})") from None
            run.number, run.machine = row.number, row.fingerprint
            runs.append(run)
        return runs

    def runs(
        self,
        *,
        machine: str | None = None,
        branch: str | None = None,
        benchmark: str | None = None,
        runner: str | None = None,
    ) -> list[SavedRun]:
        """Every run (of ``machine``, on ``branch``, of ``runner``), oldest first; with ``benchmark`` only the runs
        that have it, each with only that benchmark's record (read from the record, not the whole run)."""
        where = self._filters(machine, branch, runner)
        with self._errors("cannot read"), self.engine.connect() as conn:
            if benchmark is None:
                query = (
                    select(s.runs.c.id)
                    .join(s.machines, s.runs.c.machine_id == s.machines.c.id)
                    .where(*where)
                    .order_by(*self._order())
                )
                return self._load(conn, list(conn.execute(query).scalars()))
            return self._series(conn, where, benchmark)

    def _series(self, conn: Connection, where: list, benchmark: str) -> list[SavedRun]:
        r = s.runs.c
        query = (
            select(
                r.label,
                r.number,
                r.commit_sha,
                r.commit_time,
                r.saved_time,
                r.branch,
                r.dirty,
                r.machine_energy,
                s.machines.c.fingerprint,
                s.records.c.entry,
            )
            .join(s.machines, r.machine_id == s.machines.c.id)
            .join(s.records, s.records.c.run_id == r.id)
            .join(s.benchmarks, s.benchmarks.c.id == s.records.c.benchmark_id)
            .where(*where, s.benchmarks.c.fullname == benchmark)
            .order_by(*self._order())
        )
        runs = []
        for row in conn.execute(query):
            data = {
                "benchmarks": [json.loads(row.entry)],
                "commit_info": {
                    "id": row.commit_sha,
                    "time": row.commit_time,
                    "branch": row.branch,
                    "dirty": row.dirty,
                },
                "machine_info": {"energy": json.loads(row.machine_energy)} if row.machine_energy else {},
                "datetime": row.saved_time,
            }
            run = run_from_json(data, row.label)
            run.number, run.machine = row.number, row.fingerprint
            runs.append(run)
        return runs

    def find(
        self, spec: str, *, machine: str | None = None, branch: str | None = None, runner: str | None = None
    ) -> SavedRun:
        """One run: ``latest``, its label, or (newest first) a commit prefix; :class:`RunNotFound` when none."""
        from energy_bench.runs.store.files import RunNotFound

        if spec == "latest":
            found = self.last(1, machine=machine, branch=branch, runner=runner)
        else:
            where = self._filters(machine, branch, runner)
            matches = (s.runs.c.label == spec) | s.runs.c.commit_sha.startswith(spec, autoescape=True)
            query = (
                select(s.runs.c.id)
                .join(s.machines, s.runs.c.machine_id == s.machines.c.id)
                .where(*where, matches)
                .order_by(*self._order(descending=True))
                .limit(1)
            )
            with self._errors("cannot read"), self.engine.connect() as conn:
                found = self._load(conn, list(conn.execute(query).scalars()))
        if not found:
            raise RunNotFound(f"no run {spec!r} in {self.display_url}")
        return found[0]

    def machines(self) -> list[Machine]:
        """Every machine with runs in the store, with how many."""
        query = (
            select(s.machines.c.fingerprint, s.machines.c.name, func.count(s.runs.c.id))
            .join(s.runs, s.runs.c.machine_id == s.machines.c.id)
            .group_by(s.machines.c.fingerprint, s.machines.c.name)
            .order_by(s.machines.c.name)
        )
        with self._errors("cannot read"), self.engine.connect() as conn:
            return [Machine(fingerprint, name, count) for fingerprint, name, count in conn.execute(query)]

    def count(self) -> int:
        with self._errors("cannot read"), self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(s.runs)).scalar_one()

    def export(self, folder: Path) -> list[Path]:
        """Every run written back as pytest-benchmark's file (``<folder>/<machine id>/<label>.json``), its text as
        saved; a file already there with the same text is left alone, one with other content gets a suffix."""
        query = (
            select(s.runs.c.label, s.runs.c.storage_machine, s.runs.c.content_hash, s.run_json.c.text)
            .join(s.run_json, s.run_json.c.run_id == s.runs.c.id)
            .order_by(*self._order())
        )
        written = []
        with self._errors("cannot read"), self.engine.connect() as conn:
            for label, storage_machine, digest, text in conn.execution_options(yield_per=100).execute(query):
                path = _export_path(folder, storage_machine, label, digest, text)
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(text.encode("utf-8"))
                    written.append(path)
        return written


def _export_path(folder: Path, machine: str | None, label: str, digest: str, text: str) -> Path | None:
    """Where an exported run goes; None when that file holds it already. Names are made safe for a file system."""
    safe = lambda name: "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name).lstrip(".") or "_"  # noqa: E731
    base = folder / safe(machine or "unknown")
    for name in (f"{safe(label)}.json", f"{safe(label)}-{digest[:12]}.json"):
        path = base / name
        if not path.exists():
            return path
        if path.read_bytes() == text.encode("utf-8"):
            return None
    return base / f"{safe(label)}-{digest}.json"


def _read_version(conn: Connection) -> int | None:
    if not inspect(conn).has_table(s.schema_version.name):
        return None
    return conn.execute(select(func.max(s.schema_version.c.version))).scalar()


def _newer(where: str, version: int) -> str:
    return (
        f"{where}: the store has schema version {version}, newer than this energy-bench reads "
        f"({s.SCHEMA_VERSION}): upgrade energy-bench"
    )


def _sqlite_connect(dbapi_connection, connection_record) -> None:
    # The driver's own transaction handling off: the "begin" listener below starts every transaction itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA foreign_keys = ON")
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("energy_bench_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
