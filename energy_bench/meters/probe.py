"""What each meter finds on this machine, and why one cannot work: the facts ``energy-bench doctor`` reports.

Each ``probe_*`` returns plain JSON with a ``status`` (a short code the doctor turns into advice) and the facts
behind it. Probes never raise for a missing library or device: that is what they report. ``probe_auto`` builds
the meter ``auto`` would pick through :func:`energy_bench.meters.select.select_meter` itself and keeps the
warnings it gives on the way down as the reasons, so the doctor's answer is the plugin's answer.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import warnings
from collections.abc import Mapping
from typing import Any

from energy_bench.errors import EnergyBenchWarning
from energy_bench.meters import gpus as gpus_mod
from energy_bench.meters import rapl as rapl_mod
from energy_bench.meters.base import MeterNotInstalled, MeterUnavailable
from energy_bench.meters.estimate import EstimateMeter
from energy_bench.meters.nvml import _init_failure
from energy_bench.meters.rapl import DEFAULT_POWERCAP_ROOT


def probe_nvml(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """NVML: library, driver, every GPU (visible to CUDA or not), its energy counter and its power now."""
    env = os.environ if environ is None else environ
    found: dict[str, Any] = {
        "status": None,
        "reason": None,
        "library": False,
        "driver_version": None,
        gpus_mod.VISIBLE_DEVICES_VAR: env.get(gpus_mod.VISIBLE_DEVICES_VAR),
        "gpus": [],
    }
    try:
        nvml = gpus_mod.load_pynvml()
    except MeterUnavailable as exc:
        return {**found, "status": "no-module", "reason": str(exc)}
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        code = getattr(exc, "value", None)
        missing = code == getattr(nvml, "NVML_ERROR_LIBRARY_NOT_FOUND", object())
        unloaded = code == getattr(nvml, "NVML_ERROR_DRIVER_NOT_LOADED", object())
        return {
            **found,
            "status": "no-driver" if missing or unloaded else "init-failed",
            "reason": _init_failure(nvml, exc),
            "library": not missing,
        }
    found["library"] = True
    try:
        return _probe_gpus(nvml, env, found)
    except nvml.NVMLError as exc:
        return {**found, "status": "query-failed", "reason": f"NVML query failed: {gpus_mod.text(exc)}"}
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()


def _probe_gpus(nvml: Any, env: Mapping[str, str], found: dict[str, Any]) -> dict[str, Any]:
    with contextlib.suppress(nvml.NVMLError):
        found["driver_version"] = gpus_mod.text(nvml.nvmlSystemGetDriverVersion())
    every = gpus_mod._nvml_gpus(nvml)
    if not every:
        return {**found, "status": "no-gpu", "reason": "NVML sees no GPU"}
    cuda_index: dict[int, int] = {}
    hidden_reason = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EnergyBenchWarning)  # the order note is kept in the view
            view = gpus_mod.cuda_gpus(nvml, env)
        cuda_index = {g.nvml_index: g.cuda_index for g in view.gpus}
        found["cuda_order_note"] = view.order_note
    except MeterUnavailable as exc:  # hides every GPU, MIG instances, a GPU that does not exist
        hidden_reason = str(exc)
    found["gpus"] = [_probe_gpu(nvml, g, cuda_index.get(g.nvml_index)) for g in every]
    visible = [g for g in found["gpus"] if g["cuda_index"] is not None]
    if not visible:
        return {**found, "status": "hidden", "reason": hidden_reason}
    if any(g["counter"] is False and g["power_w"] is None for g in visible):
        return {**found, "status": "no-reading", "reason": "a visible GPU has neither an energy counter nor power"}
    if all(g["counter"] for g in visible):
        return {**found, "status": "counter", "reason": None}
    return {**found, "status": "polling", "reason": "a visible GPU has no energy counter: power is polled"}


def _probe_gpu(nvml: Any, gpu: Any, cuda_index: int | None) -> dict[str, Any]:
    handle = gpu.handle
    row: dict[str, Any] = {
        "nvml_index": gpu.nvml_index,
        "cuda_index": cuda_index,
        "name": gpu.name,
        "uuid": gpu.uuid,
        "pci_bus_id": gpu.pci_bus_id,
        "counter": True,
        "counter_error": None,
        "power_w": None,
        "power_error": None,
        "power_limit_w": None,
    }
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except nvml.NVMLError as exc:
        row["counter"], row["counter_error"] = False, gpus_mod.text(exc)
    try:
        row["power_w"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
    except nvml.NVMLError as exc:
        row["power_error"] = gpus_mod.text(exc)
    with contextlib.suppress(nvml.NVMLError):
        row["power_limit_w"] = nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0
    return row


def probe_rapl(root: str = DEFAULT_POWERCAP_ROOT) -> dict[str, Any]:
    """RAPL: the package and DRAM zones under ``root`` and whether each counter can be read."""
    found: dict[str, Any] = {"status": None, "reason": None, "root": root, "domains": [], "denied": []}
    try:
        zones = rapl_mod.find_zones(root)
    except MeterUnavailable as exc:
        absent = not os.path.isdir(root)
        status = "absent" if absent else "denied" if "permission denied" in str(exc) else "no-zones"
        return {**found, "status": status, "reason": str(exc)}
    for domain, path in zones:
        counter = os.path.join(path, "energy_uj")
        row: dict[str, Any] = {"domain": domain, "path": counter, "readable": True, "error": None}
        try:
            fd = rapl_mod._open_counter(counter)
            try:
                rapl_mod._read_fd(fd)
            finally:
                os.close(fd)
        except (OSError, ValueError) as exc:
            row["readable"], row["error"] = False, str(exc)
            if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
                found["denied"].append(counter)
        found["domains"].append(row)
    if found["denied"]:
        denied = PermissionError(errno.EACCES, "Permission denied")
        return {**found, "status": "denied", "reason": str(rapl_mod._unreadable(found["denied"][0], denied))}
    bad = [d for d in found["domains"] if not d["readable"]]
    if bad:
        return {**found, "status": "unreadable", "reason": f"RAPL counters unreadable: {bad[0]['error']}"}
    return {**found, "status": "readable"}


def probe_zeus() -> dict[str, Any]:
    """Zeus: installed or not, and its version (importing it takes seconds)."""
    from energy_bench.meters.select import plugged_in_meters
    from energy_bench.meters.zeus import load_zeus

    registered = "zeus" in plugged_in_meters()
    try:
        _, version = load_zeus()
    except MeterNotInstalled as exc:
        return {"status": "not-installed", "reason": str(exc), "version": None, "registered": registered}
    except Exception as exc:  # a dependency that fails to import (amdsmi without ROCm, ...)
        reason = f"zeus is installed but fails to import: {type(exc).__name__}: {exc}"
        return {"status": "broken", "reason": reason, "version": None, "registered": registered}
    return {"status": "installed", "reason": None, "version": version, "registered": registered}


def probe_estimate(cpu_watts: float | None = None) -> dict[str, Any]:
    """The CPU-time estimate's own description of its model (``EstimateMeter.info()``)."""
    meter = EstimateMeter() if cpu_watts is None else EstimateMeter(cpu_watts)
    try:
        return {"status": "works", "info": meter.info()}
    finally:
        meter.close()


def probe_auto(**settings: Any) -> dict[str, Any]:
    """The meter ``select_meter("auto", **settings)`` builds, its info, and the warnings it gave on the way down."""
    from energy_bench.meters import select
    from energy_bench.meters.select import AUTO, select_meter

    select_file = select.__file__

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            meter = select_meter(AUTO, **settings)
        except MeterUnavailable as exc:  # a GPU asked for that does not exist: auto does not fall back from it
            return {"meter": None, "source": None, "reasons": [], "notes": [], "error": str(exc), "info": None}
    try:
        info = meter.info()
    finally:
        meter.close()
    ours = [w for w in caught if issubclass(w.category, EnergyBenchWarning)]
    # the selection's own warnings say why it stepped down; others (e.g. the GPU order note) are notes
    reasons = [str(w.message) for w in ours if _same_file(w.filename, select_file)]
    notes = [str(w.message) for w in ours if not _same_file(w.filename, select_file)]
    return {
        "meter": meter.name,
        "source": meter.source.value,
        "reasons": reasons,
        "notes": notes,
        "error": None,
        "info": info,
    }


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def probe_torch() -> dict[str, Any]:
    """torch and CUDA versions, and the GPUs torch sees, when torch is installed (the core install has none)."""
    try:
        missing = importlib.util.find_spec("torch") is None
    except (ImportError, ValueError):
        missing = True
    if missing:
        return {"installed": False}
    try:
        import torch
    except Exception as exc:
        return {"installed": True, "error": f"import torch failed: {type(exc).__name__}: {exc}"}
    available = bool(torch.cuda.is_available())
    return {
        "installed": True,
        "version": str(torch.__version__),
        "cuda": torch.version.cuda,
        "cuda_available": available,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if available else [],
    }
