"""What a saved run is keyed by in a store: its content hash, its machine's fingerprint and name, its times.

Plain functions over pytest-benchmark's JSON, shared by the SQL and file engines, so both find the same runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

#: fields of ``machine_info`` that name the hardware and its host: the fingerprint. Not the Python version, the kernel
#: release or the meter (a session that measured nothing has no meter description, yet runs on the same machine).
FINGERPRINT_FIELDS = ("node", "system", "machine", "processor")
#: family and model too: VMs often show one brand string ("AMD EPYC") for CPUs of different generations
FINGERPRINT_CPU_FIELDS = ("brand_raw", "family", "model", "count", "arch")
#: where energy-bench writes its own facts about a run in ``machine_info`` (version, runner label)
ENERGY_BENCH_KEY = "energy_bench"
_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*:)(?P<password>[^@\s]*)(?P<tail>@)")


def content_hash(data: Any) -> str:
    """SHA-256 of the run's content, independent of key order and indentation: the same run hashes the same."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def machine_fingerprint(machine_info: Any) -> str:
    """A stable key of the machine a run was saved on: a hash of its host name, system, architecture and CPU."""
    info = _mapping(machine_info)
    cpu = _mapping(info.get("cpu"))
    parts = {name: info.get(name) for name in FINGERPRINT_FIELDS}
    parts.update({f"cpu.{name}": cpu.get(name) for name in FINGERPRINT_CPU_FIELDS})
    canonical = json.dumps(parts, sort_keys=True, ensure_ascii=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def machine_name(machine_info: Any) -> str:
    """A readable name of the machine: its host name and CPU, e.g. ``vm (AMD EPYC, family 25 model 17, 2 cores)``."""
    info = _mapping(machine_info)
    cpu_info = _mapping(info.get("cpu"))
    cpu = cpu_model(info)
    count, family, model = cpu_info.get("count"), cpu_info.get("family"), cpu_info.get("model")
    generation = f"family {family} model {model}" if isinstance(family, int) and isinstance(model, int) else None
    cores = f"{count} cores" if isinstance(count, int) else None
    details = ", ".join(p for p in (cpu, generation, cores) if p)
    host = _text(info.get("node")) or "unknown host"
    return f"{host} ({details})" if details else host


def cpu_model(machine_info: Any) -> str | None:
    info = _mapping(machine_info)
    return _text(_mapping(info.get("cpu")).get("brand_raw")) or _text(_mapping(info.get("energy")).get("cpu_model"))


def gpu_model(machine_info: Any) -> str | None:
    """The measured GPUs' names as the meter described them (``machine_info.energy.gpus``), joined; None without."""
    energy = _mapping(_mapping(machine_info).get("energy"))
    parts = [energy, *(p for p in energy.get("parts", []) if isinstance(p, Mapping))]
    names = [
        _text(gpu.get("name"))
        for part in parts
        for gpu in (part.get("gpus") if isinstance(part.get("gpus"), list) else [])
        if isinstance(gpu, Mapping)
    ]
    names = [n for n in names if n]
    return ", ".join(dict.fromkeys(names)) if names else None


def energy_bench_facts(machine_info: Any) -> Mapping[str, Any]:
    """``machine_info.energy_bench``: the energy-bench version that saved the run and its runner label, if any."""
    return _mapping(_mapping(machine_info).get(ENERGY_BENCH_KEY))


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as naive UTC (sortable the same way on every engine); None when absent or unreadable.

    A time without an offset is taken as UTC (pytest-benchmark saves UTC).
    """
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def mask_password(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (for URLs that do not even parse)."""
    return _PASSWORD_IN_URL.sub(lambda m: f"{m['head']}***{m['tail']}", text)
