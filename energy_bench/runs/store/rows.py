"""A saved run (pytest-benchmark's JSON) as the rows of the history store's tables; plain Python, no database.

The run is parsed with :func:`~energy_bench.runs.parse.run_from_json`, the same code that reads a file, so a record's
columns hold exactly what a comparison of the file would use: joules and seconds per call (and per round), accuracy,
energy to the target, and carbon and cost when the run recorded them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_benchmark.utils import safe_dumps

from energy_bench.runs.parse import RUN_NUMBER, BenchRecord, SavedRun, run_from_json
from energy_bench.runs.store import keys

#: the order time of a run that says neither when its commit was made nor when it was saved
EPOCH = datetime(1970, 1, 1)


@dataclass
class RunRows:
    run: dict[str, Any]
    machine: dict[str, Any]
    commit: dict[str, Any] | None
    #: per benchmark fullname: its eb_benchmarks row and its eb_records row (without the keys)
    benchmarks: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    text: str = ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _short(value: Any, limit: int = 255) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def format_run_json(data: Any) -> str:
    """A run's JSON as pytest-benchmark writes its files (for runs that come without their file's text)."""
    return safe_dumps(data, ensure_ascii=True, indent=4)


def storage_machine_id(machine_info: Mapping[str, Any]) -> str:
    """pytest-benchmark's machine id (its storage folder name) as it derives it, from the saved machine_info."""
    version = ".".join(str(machine_info.get("python_version") or "").split(".")[:2])
    bits = _mapping(machine_info.get("cpu")).get("bits")
    parts = (machine_info.get("system"), machine_info.get("python_implementation"), version, f"{bits}bit")
    return "-".join(str(p or "unknown") for p in parts)


def run_label(origin: str | None, digest: str) -> tuple[str, int | None, str | None]:
    """(label, run number, storage folder) of a run: from its file name when it came from one."""
    if origin and origin.endswith(".json"):
        path = Path(origin)
        match = RUN_NUMBER.match(path.name)
        return path.name[:-5], int(match.group(1)) if match else None, path.parent.name if match else None
    return f"run-{digest[:12]}", None, None


def record_row(entry: Mapping[str, Any], record: BenchRecord) -> dict[str, Any]:
    energy = _mapping(_mapping(entry.get("extra_info")).get("energy"))
    carbon, cost, target = _mapping(energy.get("carbon")), _mapping(energy.get("cost")), record.to_target
    iterations = energy.get("iterations")
    rounds = (record.joules or record.time).rounds if (record.joules or record.time) else None
    return {
        "params": json.dumps(entry.get("params"), sort_keys=True, default=str) if entry.get("params") else None,
        "iterations": iterations if isinstance(iterations, int) and not isinstance(iterations, bool) else None,
        "rounds": rounds,
        "joules": record.joules.mean if record.joules else None,
        "joules_stddev": record.joules.stddev if record.joules else None,
        "joules_per_round": _finite(_mapping(energy.get("joules")).get("mean")),
        "net_joules": record.net_joules.mean if record.net_joules else None,
        "seconds": record.time.mean if record.time else None,
        "seconds_stddev": record.time.stddev if record.time else None,
        "seconds_per_round": _finite(_mapping(energy.get("seconds")).get("mean")),
        "accuracy": record.accuracy,
        "source": _short(record.source, 32),
        "meter": _short(record.meter, 1000),
        "error": _short(record.error, 4000),
        "target_reached": target.reached if target else None,
        "target_joules": target.joules if target else None,
        "target_seconds": target.seconds if target else None,
        "target_rounds": target.rounds if target else None,
        "carbon_grams_per_call": _finite(carbon.get("grams_per_call")),
        "carbon_grams_to_target": _finite(carbon.get("grams_to_target")),
        "cost_per_call": _finite(cost.get("per_call")),
        "cost_to_target": _finite(cost.get("to_target")),
        "currency": _short(cost.get("currency"), 16),
        "entry": json.dumps(entry, ensure_ascii=False, default=str),
    }


def run_rows(data: Mapping[str, Any], text: str | None = None, origin: str | None = None) -> RunRows:
    """The rows of one run; :class:`~energy_bench.runs.parse.RunLoadError` when ``data`` is not a run."""
    digest = keys.content_hash(data)
    label, number, folder = run_label(origin, digest)
    parsed: SavedRun = run_from_json(data, label)
    machine_info = _mapping(data.get("machine_info"))
    commit_info = _mapping(data.get("commit_info"))
    energy = _mapping(machine_info.get("energy"))
    facts = keys.energy_bench_facts(machine_info)
    project = _short(commit_info.get("project")) or "unknown"
    saved_at = keys.parse_time(parsed.datetime) or EPOCH
    rows = RunRows(
        run={
            "content_hash": digest,
            "label": label,
            "number": number,
            "storage_machine": folder or storage_machine_id(machine_info),
            "project": project,
            "branch": _short(parsed.branch),
            "commit_sha": _short(parsed.commit_id, 64),
            "commit_time": parsed.commit_time,
            "dirty": parsed.dirty,
            "runner_label": _short(facts.get("runner_label")),
            "saved_time": parsed.datetime,
            "order_at": keys.parse_time(parsed.commit_time) or saved_at,
            "saved_at": saved_at,
            "meter": _short(energy.get("meter"), 1000),
            "source": _short(energy.get("source"), 32),
            "cpu_model": keys.cpu_model(machine_info),
            "gpu_model": keys.gpu_model(machine_info),
            "energy_bench_version": _short(facts.get("version"), 64),
            "pytest_benchmark_version": _short(data.get("version"), 64),
            "python_version": _short(machine_info.get("python_version"), 64),
            "machine_energy": json.dumps(energy, default=str) if energy else None,
            "benchmark_count": len(parsed.benchmarks),
        },
        machine={
            "fingerprint": keys.machine_fingerprint(machine_info),
            "name": keys.machine_name(machine_info),
            "cpu_model": keys.cpu_model(machine_info),
        },
        commit=(
            {"project": project, "sha": parsed.commit_id[:64], "time": parsed.commit_time} if parsed.commit_id else None
        ),
        text=text if text is not None else format_run_json(data),
    )
    entries = {entry["fullname"]: entry for entry in data["benchmarks"]}  # the last of a duplicate, as parsed
    for fullname, record in parsed.benchmarks.items():
        entry = entries[fullname]
        rows.benchmarks[fullname] = {
            "project": project,
            "fullname": fullname,
            "name": entry.get("name") if isinstance(entry.get("name"), str) else None,
            "group": entry.get("group") if isinstance(entry.get("group"), str) else None,
        }
        rows.records[fullname] = record_row(entry, record)
    return rows
