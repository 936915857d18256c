"""The history store's tables (SQLAlchemy Core), its schema version and its migrations.

Runs, their benchmarks' records, machines and commits are separate tables, so a record is found by its benchmark,
machine, branch or commit without parsing JSON; each run's JSON is kept as saved (``eb_run_json``), so it is written
back byte for byte, and each record's own entry (``eb_records.entry``) is what the store parses back into a
:class:`~energy_bench.runs.parse.BenchRecord` with the same code as a file.

Versions: ``eb_schema`` holds one row, the schema version. A store is created at :data:`SCHEMA_VERSION`; an older one
is brought up to date by :data:`MIGRATIONS` (version -> function upgrading it by one) inside the opening transaction;
a newer one is refused. Every table is prefixed ``eb_`` so the store can share a PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Connection

#: the schema this energy-bench writes and reads
SCHEMA_VERSION = 1

metadata = MetaData()

schema_version = Table("eb_schema", metadata, Column("version", Integer, nullable=False))

machines = Table(
    "eb_machines",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("cpu_model", Text),
)

commits = Table(
    "eb_commits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project", String(255), nullable=False),
    Column("sha", String(64), nullable=False),
    Column("time", Text),  # as saved (ISO 8601 with its offset)
    UniqueConstraint("project", "sha", name="eb_commits_project_sha"),
)

benchmarks = Table(
    "eb_benchmarks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project", String(255), nullable=False),
    Column("fullname", Text, nullable=False),
    Column("name", Text),
    Column("group", Text),
    UniqueConstraint("project", "fullname", name="eb_benchmarks_project_fullname"),
)

runs = Table(
    "eb_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("content_hash", String(64), nullable=False, unique=True),
    Column("label", Text, nullable=False),  # the file name without .json, as pytest-benchmark names runs
    Column("number", Integer),
    Column("storage_machine", Text),  # pytest-benchmark's machine id (its storage folder)
    Column("project", String(255)),
    Column("branch", String(255)),
    Column("commit_id", ForeignKey("eb_commits.id")),
    Column("commit_sha", String(64)),
    Column("commit_time", Text),
    Column("dirty", Boolean),
    Column("machine_id", ForeignKey("eb_machines.id"), nullable=False),
    Column("runner_label", String(255)),
    Column("saved_time", Text),  # pytest-benchmark's "datetime", as saved
    # order: commit time (else save time), then save time, naive UTC (the epoch when a run has neither)
    Column("order_at", DateTime, nullable=False),
    Column("saved_at", DateTime, nullable=False),
    Column("meter", Text),
    Column("source", String(32)),
    Column("cpu_model", Text),
    Column("gpu_model", Text),
    Column("energy_bench_version", String(64)),
    Column("pytest_benchmark_version", String(64)),
    Column("python_version", String(64)),
    Column("machine_energy", Text),  # machine_info.energy as JSON: what comparability checks read
    Column("benchmark_count", Integer, nullable=False),
)
# "the last N runs of this machine on this branch" and "on this runner label"
Index("eb_runs_machine_branch_order", runs.c.machine_id, runs.c.branch, runs.c.order_at, runs.c.saved_at, runs.c.id)
Index("eb_runs_runner_branch_order", runs.c.runner_label, runs.c.branch, runs.c.order_at, runs.c.saved_at)
Index("eb_runs_commit", runs.c.commit_sha)

run_json = Table(
    "eb_run_json",
    metadata,
    Column("run_id", ForeignKey("eb_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("text", Text, nullable=False),
)

records = Table(
    "eb_records",
    metadata,
    Column("run_id", ForeignKey("eb_runs.id", ondelete="CASCADE"), primary_key=True),
    Column("benchmark_id", ForeignKey("eb_benchmarks.id"), primary_key=True),
    Column("params", Text),  # JSON
    Column("iterations", Integer),
    Column("rounds", Integer),
    # per call (joules and seconds divided by the calls of a round), and per round
    Column("joules", Float),
    Column("joules_stddev", Float),
    Column("joules_per_round", Float),
    Column("net_joules", Float),
    Column("seconds", Float),
    Column("seconds_stddev", Float),
    Column("seconds_per_round", Float),
    Column("accuracy", Float),
    Column("source", String(32)),
    Column("meter", Text),
    Column("error", Text),
    Column("target_reached", Boolean),
    Column("target_joules", Float),
    Column("target_seconds", Float),
    Column("target_rounds", Integer),
    Column("carbon_grams_per_call", Float),
    Column("carbon_grams_to_target", Float),
    Column("cost_per_call", Float),
    Column("cost_to_target", Float),
    Column("currency", String(16)),
    Column("entry", Text, nullable=False),  # the benchmark's entry of the run's JSON
)
# one benchmark's series: its records in run order
Index("eb_records_benchmark", records.c.benchmark_id, records.c.run_id)

#: version -> the function that upgrades a store at that version to the next (none yet: version 1 is the first)
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}
