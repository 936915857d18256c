"""Which GPUs CUDA shows this process, and which NVML device each one is.

CUDA numbers GPUs its own way and NVML ignores it: ``CUDA_VISIBLE_DEVICES`` picks and orders the GPUs a CUDA
program sees, ``CUDA_DEVICE_ORDER`` decides what an integer in it means, and NVML always enumerates every GPU of the
machine. This module turns CUDA's view into NVML devices, as torch does to count devices, so that ``gpu0`` in a
record is ``cuda:0`` of the code under test. The rules are the CUDA runtime's:

* unset: every GPU, in CUDA's order;
* integers: positions in CUDA's order of all GPUs (``2,0``: ``cuda:0`` is GPU 2). A negative number or an entry
  that is not a number ends the list; ``1gpu`` reads as ``1`` (CUDA parses with ``strtoul``);
* ``GPU-<uuid>``: a GPU by UUID, full or any prefix that matches one GPU only; an entry without the ``GPU-`` prefix
  ends the list;
* ``MIG-...``: MIG instances. NVML has no energy counter per MIG instance, so they cannot be measured
  (:class:`MigUnsupported`);
* empty or ``-1``: no GPU at all.

CUDA's order: with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, ascending PCI bus id, found here from each GPU's bus id (NVML
enumerates in the same order). With ``FASTEST_FIRST`` (CUDA's default) the fastest GPU comes first by a heuristic
NVIDIA does not publish: on GPUs of one model that is again PCI bus order, but on a machine with different models
nobody outside CUDA knows it, so integers are then read in PCI bus order with a warning and a note in the record
(set ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` to make them agree). UUIDs need no order.

Unlike CUDA, which silently drops an entry that matches no GPU (and every entry after it), and shows no GPU at all
when one is listed twice, such entries are errors here (:class:`GpuIndexError`): the code under test would run on
other GPUs than its author meant, and measuring those would mislead.

For other code (e.g. giving each distributed rank its own GPU): :func:`nvml_index` maps one CUDA device index to
its NVML index on its own; with NVML already initialized, :func:`cuda_device` gives the whole :class:`CudaGpu`
(handle included) and :func:`select_gpus` several.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from energy_bench.errors import EnergyBenchWarning
from energy_bench.meters.base import MeterUnavailable

VISIBLE_DEVICES_VAR = "CUDA_VISIBLE_DEVICES"
DEVICE_ORDER_VAR = "CUDA_DEVICE_ORDER"
PCI_BUS_ID_ORDER = "PCI_BUS_ID"
FASTEST_FIRST_ORDER = "FASTEST_FIRST"
UUID_PREFIX = "GPU-"
MIG_PREFIX = "MIG-"


class GpuIndexError(MeterUnavailable):
    """A GPU was asked for that does not exist (a configuration error, never a fallback)."""


class MigUnsupported(MeterUnavailable):
    """CUDA_VISIBLE_DEVICES names MIG instances, which NVML cannot measure one by one."""


def load_pynvml() -> Any:
    """The ``pynvml`` module, or :class:`MeterUnavailable` saying it is missing."""
    try:
        import pynvml
    except ImportError as exc:
        raise MeterUnavailable(
            f"NVML library not found (python module pynvml cannot be imported: {exc}; install nvidia-ml-py)"
        ) from None
    return pynvml


def text(value: Any) -> str:
    """A str from NVML's str-or-bytes results."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class CudaGpu:
    """One GPU as CUDA numbers it and as NVML knows it."""

    cuda_index: int
    nvml_index: int
    handle: Any
    uuid: str
    pci_bus_id: str
    name: str

    @property
    def domain(self) -> str:
        """The record's domain name: ``gpu<cuda index>``."""
        return f"gpu{self.cuda_index}"

    def describe(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "cuda_index": self.cuda_index,
            "nvml_index": self.nvml_index,
            "uuid": self.uuid,
            "pci_bus_id": self.pci_bus_id,
            "name": self.name,
        }


@dataclass(frozen=True)
class CudaView:
    """The GPUs CUDA shows this process, in CUDA's order, and how that order was found."""

    gpus: tuple[CudaGpu, ...]
    visible_devices: str | None
    device_order: str
    #: set when CUDA's order had to be assumed (FASTEST_FIRST on mixed GPU models)
    order_note: str | None = None

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {VISIBLE_DEVICES_VAR: self.visible_devices, DEVICE_ORDER_VAR: self.device_order}
        if self.order_note:
            info["cuda_order_note"] = self.order_note
        return info


def parse_visible_devices(value: str) -> list[int] | list[str]:
    """The entries of ``CUDA_VISIBLE_DEVICES`` that CUDA reads: integers, or UUID prefixes (``GPU-...``).

    Raises :class:`MigUnsupported` for MIG instances and :class:`GpuIndexError` for an entry listed twice.
    """
    value = value.strip()
    if value.startswith(MIG_PREFIX):
        raise MigUnsupported(
            f"{VISIBLE_DEVICES_VAR}={value!r} names MIG instances: NVML has no energy counter per MIG instance "
            "(measure whole GPUs, or use --energy-meter=estimate)"
        )
    entries: list[Any] = []
    for raw in value.split(","):
        entry = raw.strip()
        parsed: int | str | None = _uuid_entry(entry) if value.startswith(UUID_PREFIX) else _integer_entry(entry)
        if parsed is None:
            break  # CUDA ignores this entry and every one after it
        if parsed in entries:
            raise GpuIndexError(f"{VISIBLE_DEVICES_VAR}={value!r} lists {parsed} twice (CUDA then shows no GPU)")
        entries.append(parsed)
    return entries


def _uuid_entry(entry: str) -> str | None:
    return entry if entry.startswith(UUID_PREFIX) else None


def _integer_entry(entry: str) -> int | None:
    """The leading integer of ``entry`` as C's strtoul reads it; None for a negative number or no digits."""
    sign, digits = (entry[0], entry[1:]) if entry[:1] in ("+", "-") else ("", entry)
    count = len(digits) - len(digits.lstrip("0123456789"))
    if count == 0 or sign == "-":
        return None
    return int(digits[:count])


@dataclass(frozen=True)
class _NvmlGpu:
    nvml_index: int
    handle: Any
    uuid: str
    pci_bus_id: str
    name: str


def _nvml_gpus(nvml: Any) -> list[_NvmlGpu]:
    found = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        pci = nvml.nvmlDeviceGetPciInfo(handle)
        found.append(
            _NvmlGpu(
                index,
                handle,
                text(nvml.nvmlDeviceGetUUID(handle)),
                text(pci.busId),
                text(nvml.nvmlDeviceGetName(handle)),
            )
        )
    return found


def pci_sort_key(bus_id: str) -> tuple[int, ...]:
    """``domain:bus:device.function`` (hex, any domain width) as numbers, for PCI bus order."""
    domain, bus, rest = bus_id.split(":")
    device, _, function = rest.partition(".")
    return (int(domain, 16), int(bus, 16), int(device, 16), int(function or "0", 16))


def cuda_gpus(nvml: Any, environ: Mapping[str, str] | None = None) -> CudaView:
    """The GPUs CUDA shows a process with ``environ`` (default: this one's), in CUDA's order.

    ``nvml`` is the initialized pynvml module. Raises :class:`MeterUnavailable` when CUDA would see no GPU and
    :class:`GpuIndexError` when ``CUDA_VISIBLE_DEVICES`` names a GPU that does not exist.
    """
    env = os.environ if environ is None else environ
    visible = env.get(VISIBLE_DEVICES_VAR)
    order_var = env.get(DEVICE_ORDER_VAR, FASTEST_FIRST_ORDER).strip().upper() or FASTEST_FIRST_ORDER
    everything = _nvml_gpus(nvml)
    if not everything:
        raise MeterUnavailable("NVML sees no GPU")
    by_bus = sorted(everything, key=lambda g: pci_sort_key(g.pci_bus_id))
    entries = None if visible is None else parse_visible_devices(visible)
    note = None
    if order_var != PCI_BUS_ID_ORDER and len({g.name for g in everything}) > 1 and not _all_uuids(entries):
        note = (
            f"{DEVICE_ORDER_VAR}={order_var} on GPUs of different models: CUDA's fastest-first order is not "
            "published, so GPU indices were read in PCI bus order; set CUDA_DEVICE_ORDER=PCI_BUS_ID to make sure"
        )
        warnings.warn(note, EnergyBenchWarning, stacklevel=2)
    if entries is None:
        chosen = by_bus
    else:
        chosen = [_match(entry, by_bus, visible or "") for entry in entries]
        if len({g.nvml_index for g in chosen}) < len(chosen):
            raise GpuIndexError(f"{VISIBLE_DEVICES_VAR}={visible!r} lists one GPU twice (CUDA then shows no GPU)")
    if not chosen:
        raise MeterUnavailable(f"{VISIBLE_DEVICES_VAR}={visible!r} hides every GPU")
    gpus = tuple(CudaGpu(i, g.nvml_index, g.handle, g.uuid, g.pci_bus_id, g.name) for i, g in enumerate(chosen))
    return CudaView(gpus, visible, order_var, note)


def _all_uuids(entries: list[int] | list[str] | None) -> bool:
    return bool(entries) and all(isinstance(e, str) for e in entries)


def _match(entry: int | str, by_bus: list[_NvmlGpu], visible: str) -> _NvmlGpu:
    where = f"{VISIBLE_DEVICES_VAR}={visible!r}"
    if isinstance(entry, int):
        if entry >= len(by_bus):
            raise GpuIndexError(
                f"{where}: GPU {entry} does not exist (NVML sees {len(by_bus)} GPU(s), 0..{len(by_bus) - 1}; "
                "CUDA would ignore it and every entry after it)"
            )
        return by_bus[entry]
    matches = [g for g in by_bus if g.uuid.startswith(entry)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(g.uuid for g in (matches or by_bus))
    problem = "matches several GPUs" if matches else "matches no GPU"
    raise GpuIndexError(f"{where}: {entry} {problem} (UUIDs: {known}; CUDA would ignore it and every entry after it)")


def select_gpus(
    nvml: Any, cuda_indices: Iterable[int] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[CudaView, list[CudaGpu]]:
    """CUDA's view and the GPUs at ``cuda_indices`` in it (default: all of them), duplicates dropped.

    An index CUDA does not have is a :class:`GpuIndexError`.
    """
    view = cuda_gpus(nvml, environ)
    if cuda_indices is None:
        return view, list(view.gpus)
    wanted = list(dict.fromkeys(cuda_indices))
    count = len(view.gpus)
    bad = [i for i in wanted if not 0 <= i < count]
    if bad:
        shown = f" ({VISIBLE_DEVICES_VAR}={view.visible_devices})" if view.visible_devices is not None else ""
        raise GpuIndexError(
            f"GPU index {', '.join(map(str, bad))} out of range: CUDA sees {count} GPU(s){shown}, "
            f"indices 0..{count - 1}"
        )
    return view, [view.gpus[i] for i in wanted]


def cuda_device(nvml: Any, cuda_index: int, environ: Mapping[str, str] | None = None) -> CudaGpu:
    """The GPU that CUDA calls ``cuda:<cuda_index>`` in a process with ``environ`` (default: this one's).

    ``nvml`` is the initialized pynvml module; the handle stays valid while NVML stays initialized. Raises
    :class:`GpuIndexError` for an index CUDA does not have, :class:`MeterUnavailable` when CUDA sees no GPU.
    """
    return select_gpus(nvml, [cuda_index], environ)[1][0]


def nvml_index(cuda_index: int, environ: Mapping[str, str] | None = None) -> int:
    """NVML's index of the GPU that CUDA calls ``cuda:<cuda_index>`` (signature kept stable for other modules).

    Initializes and shuts down NVML itself. ``environ`` defaults to this process's environment; pass a rank's
    environment to map its device. Raises :class:`MeterUnavailable` (NVML missing, no GPU visible) or its subclass
    :class:`GpuIndexError` (no such GPU).
    """
    nvml = load_pynvml()
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        raise MeterUnavailable(f"NVML cannot start: {text(exc)}") from None
    try:
        return cuda_device(nvml, cuda_index, environ).nvml_index
    except nvml.NVMLError as exc:
        raise MeterUnavailable(f"NVML query failed: {text(exc)}") from None
    finally:
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()
