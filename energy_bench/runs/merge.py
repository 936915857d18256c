"""Joining the saved runs of a session's shards (``--energy-shard=K/N``) into one run.

Each shard is pytest-benchmark's JSON; the merged run is too, so ``energy-bench compare``, ``energy-bench report``
and the gate (``--energy-compare=PATH``) read it like any other: ``machine_info`` and ``commit_info`` of the first
shard, the benchmarks of all shards one after the other, ``machine_info.energy.shards`` saying what each shard held
and where it ran. A benchmark found in two files is always refused. Shards measured with other meters, on other
devices (GPU names, CPU model), with other study profiles or at other commits are refused too
(:class:`MergeError`), unless forced; a forced merge says what it was forced past in ``machine_info.energy.notes``.

Node-wide counters (RAPL) cannot tell apart two shards that ran at the same time on one node: each shard's joules
would hold the other's work. Shards that did so are flagged in ``machine_info.energy.notes``, which
``energy-bench report`` prints under the run.

Plain Python: no pytest, no torch.
"""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_benchmark.utils import get_current_time

from energy_bench.errors import EnergyBenchError
from energy_bench.runs.compare import compatibility_problems
from energy_bench.runs.store.files import Storage

#: meters whose counters cover a whole node: concurrent shards on that node cannot be told apart
NODE_WIDE_METERS = ("rapl",)


class MergeError(EnergyBenchError, ValueError):
    """Shards that cannot be merged; the message names the files and says why."""


@dataclass
class ShardRun:
    """One shard's saved run and, where known, where it ran (the Ray driver's node id, address, GPUs)."""

    label: str
    data: dict[str, Any]
    where: dict[str, Any] = field(default_factory=dict)

    @property
    def machine(self) -> dict[str, Any]:
        machine = self.data.get("machine_info")
        return machine if isinstance(machine, dict) else {}

    @property
    def energy(self) -> dict[str, Any]:
        energy = self.machine.get("energy")
        return energy if isinstance(energy, dict) else {}

    @property
    def shard(self) -> dict[str, Any]:
        shard = self.energy.get("shard")
        return shard if isinstance(shard, dict) else {}

    @property
    def name(self) -> str:
        """``1/2 (file.json)``, or the file alone for a run saved without --energy-shard."""
        return f"{self.shard['shard']} ({self.label})" if self.shard.get("shard") else self.label

    def records(self) -> list[Mapping[str, Any]]:
        return [
            b["extra_info"]
            for b in self.data["benchmarks"]
            if isinstance(b, Mapping) and isinstance(b.get("extra_info"), Mapping)
        ]

    def node(self) -> str | None:
        return self.where.get("node_id") or self.machine.get("node")


def parse_shard_run(data: Any, label: str, where: Mapping[str, Any] | None = None) -> ShardRun:
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise MergeError(f"{label}: not a pytest-benchmark run (no 'benchmarks' list)")
    for entry in data["benchmarks"]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("fullname"), str):
            raise MergeError(f"{label}: not a pytest-benchmark run (a benchmark without 'fullname')")
    return ShardRun(label, data, dict(where or {}))


def read_shard_run(path: Path | str) -> ShardRun:
    """A shard's JSON file; :class:`MergeError` naming the file when it cannot be used."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MergeError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    except ValueError as exc:
        raise MergeError(f"{path}: truncated or invalid JSON ({exc})") from None
    return parse_shard_run(data, str(path))


# ---------------------------------------------------------------------------- checks


def _values(shard: ShardRun, key: str) -> tuple[str, ...]:
    """Distinct values of ``key`` in the shard's records (``energy.meter`` reads the energy record's meter)."""
    found = []
    for extra in shard.records():
        value: Any = extra
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is not None:
            found.append(str(value))
    return tuple(sorted(set(found)))


def _mixed(what: str, values: Mapping[str, tuple[str, ...]]) -> list[str]:
    """A problem when shards (those with any value) disagree on ``what``."""
    present = {name: v for name, v in values.items() if v}
    if len(set(present.values())) <= 1:
        return []
    listed = ", ".join(f"{name}: {' + '.join(v)}" for name, v in present.items())
    return [f"mixed {what}: {listed}"]


def _meters(shard: ShardRun) -> tuple[str, ...]:
    """The meters and sources (measured, estimated) of a shard's records and machine description."""
    found = {*_values(shard, "energy.meter"), *_values(shard, "energy.source")}
    found |= {str(shard.energy[k]) for k in ("meter", "source") if shard.energy.get(k)}
    return tuple(sorted(found))


def _devices_problems(shards: Sequence[ShardRun]) -> list[str]:
    with_energy = [s for s in shards if s.energy.get("meter")]
    problems = []
    for other in with_energy[1:]:
        # No records given: only the machines' devices (GPU names, CPU model) are compared.
        for problem in compatibility_problems({}, {}, with_energy[0].energy, other.energy):
            problems.append(f"{with_energy[0].name} vs {other.name}: {problem}")
    return problems


def _shard_set_problems(shards: Sequence[ShardRun]) -> list[str]:
    counts = {s.name: str(s.shard["shard"]).partition("/")[2] for s in shards if s.shard.get("shard")}
    problems = _mixed("shard counts (the N of K/N)", {name: (n,) for name, n in counts.items()})
    seen: dict[str, str] = {}
    for s in shards:
        spec = s.shard.get("shard")
        if spec in seen:
            problems.append(f"shard {spec} given twice: {seen[spec]} and {s.label}")
        elif spec:
            seen[spec] = s.label
    return problems


def merge_problems(shards: Sequence[ShardRun]) -> list[str]:
    """Why these shards are not parts of one run: meters, devices, profiles, commits, shard numbers."""
    commits = {s.name: (str((s.data.get("commit_info") or {}).get("id") or ""),) for s in shards}
    return [
        *_mixed("meters", {s.name: _meters(s) for s in shards}),
        *_devices_problems(shards),
        *_mixed("study profiles", {s.name: _values(s, "profile") for s in shards}),
        *_mixed("commits", {name: c for name, c in commits.items() if c != ("",)}),
        *_shard_set_problems(shards),
    ]


def duplicate_benchmarks(shards: Sequence[ShardRun]) -> list[str]:
    owner: dict[str, str] = {}
    duplicates = []
    for s in shards:
        for entry in s.data["benchmarks"]:
            name = entry["fullname"]
            if name in owner:
                duplicates.append(f"{name} is in {owner[name]} and {s.label}")
            owner.setdefault(name, s.label)
    return duplicates


# ---------------------------------------------------------------------------- notes


def _interval(shard: ShardRun) -> tuple[datetime.datetime, datetime.datetime] | None:
    try:
        start = datetime.datetime.fromisoformat(str(shard.shard["started"]))
        end = datetime.datetime.fromisoformat(str(shard.shard["finished"]))
    except (KeyError, ValueError):
        return None
    if start.tzinfo is None or end.tzinfo is None:  # times without a zone cannot be set against other machines'
        return None
    return start, end


def node_wide_reason(shard: ShardRun) -> str | None:
    """Why a shard's joules cover its whole node: a node-wide meter, or GPUs measured that it was not given."""
    meters = str(shard.energy.get("meter") or "").split("+")
    wide = [m for m in meters if m in NODE_WIDE_METERS]
    if wide:
        return f"node-wide meter {'+'.join(wide)}"
    if shard.where.get("gpus") == [] and any(m.startswith("nvml") for m in meters):
        return "GPUs measured by a shard that was given none"
    return None


def concurrency_notes(shards: Sequence[ShardRun]) -> list[str]:
    """Shards that shared a node, at the same time (or at unknown times), with node-wide joules."""
    notes = []
    for i, first in enumerate(shards):
        for second in shards[i + 1 :]:
            reason = node_wide_reason(first) or node_wide_reason(second)
            if reason is None or first.node() is None or first.node() != second.node():
                continue
            a, b = _interval(first), _interval(second)
            if a is not None and b is not None and (a[1] <= b[0] or b[1] <= a[0]):
                continue
            when = "at the same time" if a is not None and b is not None else "possibly at the same time"
            notes.append(
                f"shards {first.name} and {second.name} ran {when} on node {first.node()} ({reason}): "
                "each one's joules include the other's work"
            )
    return notes


def missing_shards(shards: Sequence[ShardRun]) -> list[str]:
    specs = [str(s.shard["shard"]) for s in shards if s.shard.get("shard")]
    if not specs:
        return []
    count = specs[0].partition("/")[2]
    if not count.isdigit():
        return []
    missing = [f"{k}/{count}" for k in range(1, int(count) + 1) if f"{k}/{count}" not in specs]
    return [f"partial run: shard(s) {', '.join(missing)} missing"] if missing else []


# ---------------------------------------------------------------------------- merge


def _shard_order(shard: ShardRun) -> tuple[int, str]:
    index = str(shard.shard.get("shard") or "").partition("/")[0]
    return (int(index) if index.isdigit() else 0, shard.label)


def merge_runs(shards: Iterable[ShardRun], *, force: bool = False) -> dict[str, Any]:
    """One run from its shards (ordered by shard number); :class:`MergeError` when they do not belong together."""
    shards = sorted(shards, key=_shard_order)
    if not shards:
        raise MergeError("no shard to merge")
    duplicates = duplicate_benchmarks(shards)
    if duplicates:
        raise MergeError(f"a benchmark in two shards: {'; '.join(duplicates)}")
    problems = merge_problems(shards)
    if problems and not force:
        raise MergeError(f"refusing to merge: {'; '.join(problems)} (use --force to merge anyway)")
    base = next((s for s in shards if s.energy.get("meter")), shards[0])
    machine = copy.deepcopy(shards[0].machine)
    energy = {k: copy.deepcopy(v) for k, v in base.energy.items() if k != "shard"}
    energy["shards"] = [
        {"file": s.label, **copy.deepcopy(s.shard), "host": s.machine.get("node"), **copy.deepcopy(s.where)}
        for s in shards
    ]
    notes = [*energy.get("notes", []), *concurrency_notes(shards), *missing_shards(shards)]
    notes += [f"merged despite: {p}" for p in problems]
    if notes:
        energy["notes"] = list(dict.fromkeys(notes))
    machine["energy"] = energy
    dates = [str(s.data["datetime"]) for s in shards if s.data.get("datetime")]
    return {
        "machine_info": machine,
        "commit_info": copy.deepcopy(shards[0].data.get("commit_info") or {}),
        "benchmarks": [copy.deepcopy(entry) for s in shards for entry in s.data["benchmarks"]],
        "datetime": max(dates) if dates else datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "version": shards[0].data.get("version"),
    }


def save_run(data: Mapping[str, Any], storage: Storage) -> Path:
    """Save ``data`` as the next run of ``storage``'s machine folder, named as ``--benchmark-autosave`` names runs."""
    commit = data.get("commit_info") or {}
    tag = f"{commit.get('id') or 'unversioned'}_{get_current_time()}"
    if commit.get("dirty"):
        tag += "_uncommitted-changes"
    files = storage.run_files()
    number = int(files[-1].name[:4]) + 1 if files else 1
    storage.folder.mkdir(parents=True, exist_ok=True)
    path = storage.folder / f"{number:04d}_{tag}.json"
    write_run(data, path)
    return path


def write_run(data: Mapping[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")
