"""A stand-in for the ``pynvml`` module (nvidia-ml-py) whose GPUs follow known power traces.

It copies the shape of the real module: ``NVMLError`` whose constructor picks the subclass for
the code (``NVMLError(NVML_ERROR_NOT_SUPPORTED)`` is an ``NVMLError_NotSupported``), ``.value``
holding the code, the ``NVML_ERROR_*`` constants, names and UUIDs returned as ``str``, power in integer
mW, the energy counter in integer mJ (starting from an arbitrary offset, as after driver load),
temperatures in integer °C, and ``nvmlDeviceGetPciInfo`` returning a ctypes structure laid out like
nvidia-ml-py's ``nvmlPciInfo_t`` (``busIdLegacy`` "0000:3B:00.0", ``busId`` "00000000:3B:00.0", read back
as ``str``). GPUs are enumerated in PCI bus order, as NVML does; handle lookups by UUID or bus id raise
``NVMLError_NotFound`` for nothing found.

Install with ``monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([...]).module)``.
"""

from __future__ import annotations

import ctypes
import math
import string
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    _valClassMapping: dict[int, type] = {}

    def __new__(typ, value):
        if typ == NVMLError:
            typ = NVMLError._valClassMapping.get(value, typ)
        obj = Exception.__new__(typ)
        obj.value = value
        return obj

    def __str__(self):
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other):
        return self.value == other.value

    __hash__ = Exception.__hash__


def _error_classes() -> dict[str, type]:
    """NVMLError_NotSupported etc., built the way the real module builds them."""
    classes = {}
    for name, code in globals().items():
        if name.startswith("NVML_ERROR_"):
            cls_name = "NVMLError_" + string.capwords(name.replace("NVML_ERROR_", ""), "_").replace("_", "")

            def new(typ, *args, _code=code):
                return NVMLError.__new__(typ, _code)

            cls = type(cls_name, (NVMLError,), {"__new__": new})
            NVMLError._valClassMapping[code] = cls
            classes[cls_name] = cls
    return classes


ERROR_CLASSES = _error_classes()
globals().update(ERROR_CLASSES)

NVML_TEMPERATURE_GPU = 0
NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE = 32
NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE = 16


class nvmlPciInfo_t(ctypes.Structure):
    """nvidia-ml-py's nvmlPciInfo_t: the same fields, and bytes fields read back as str (its _PrintableStructure)."""

    _fields_ = [
        ("busIdLegacy", ctypes.c_char * NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE),
        ("domain", ctypes.c_uint),
        ("bus", ctypes.c_uint),
        ("device", ctypes.c_uint),
        ("pciDeviceId", ctypes.c_uint),
        ("pciSubSystemId", ctypes.c_uint),
        ("busId", ctypes.c_char * NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE),
    ]

    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        return value.decode() if isinstance(value, bytes) else value


def pci_info(domain: int, bus: int, device: int = 0, function: int = 0) -> nvmlPciInfo_t:
    info = nvmlPciInfo_t()
    info.busIdLegacy = f"{domain:04X}:{bus:02X}:{device:02X}.{function}".encode()
    info.busId = f"{domain:08X}:{bus:02X}:{device:02X}.{function}".encode()
    info.domain, info.bus, info.device = domain, bus, device
    info.pciDeviceId = 0x20B010DE  # an A100's device and vendor id
    return info


def fake_uuid(number: int) -> str:
    """A UUID in NVML's format: GPU- then 8-4-4-4-12 lowercase hex digits."""
    digits = f"{number + 1:08x}" * 4
    return f"GPU-{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:32]}"


@dataclass(frozen=True)
class SineTrace:
    """P(t) = base + amp * sin(2 pi t / period) watts, t in seconds since the fake started."""

    base_w: float = 150.0
    amp_w: float = 50.0
    period_s: float = 1.0

    def power(self, t: float) -> float:
        return self.base_w + self.amp_w * math.sin(2 * math.pi * t / self.period_s)

    def energy(self, t: float) -> float:
        """Exact integral of P from 0 to t, in joules."""
        w = 2 * math.pi / self.period_s
        return self.base_w * t + self.amp_w * (1 - math.cos(w * t)) / w

    def max_second_derivative(self) -> float:
        return self.amp_w * (2 * math.pi / self.period_s) ** 2


@dataclass(frozen=True)
class RampTrace:
    """P(t) = start + slope * t: the trapezoid rule is exact on it."""

    start_w: float = 100.0
    slope_w_per_s: float = 40.0

    def power(self, t: float) -> float:
        return self.start_w + self.slope_w_per_s * t

    def energy(self, t: float) -> float:
        return self.start_w * t + 0.5 * self.slope_w_per_s * t * t


@dataclass
class FakeGpu:
    trace: SineTrace | RampTrace = field(default_factory=SineTrace)
    name: str = "NVIDIA Fake A100"
    counter: bool = True  # False: the energy counter raises NotSupported, as on pre-Volta GPUs
    power_limit_mw: int | None = 300_000
    power_works: bool = True
    counter_offset_mj: int = 987_654_321
    #: an NVML error code every call on this GPU raises while set (e.g. NVML_ERROR_GPU_IS_LOST)
    fail: int | None = None
    #: None: FakeNvml assigns fake_uuid(position)
    uuid: str | None = None
    #: PCI bus number; None: FakeNvml assigns 0x1A + 0x10 * position (GPUs listed in bus order)
    bus: int | None = None
    #: °C, or a function of seconds since the fake started; None: the sensor reads NotSupported
    temperature: float | Callable[[float], float] | None = 40.0


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeNvml:
    """State of the fake library; ``.module`` is what goes into ``sys.modules["pynvml"]``."""

    def __init__(
        self,
        gpus: list[FakeGpu] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        library_found: bool = True,
        driver_version: str = "550.54.15",
    ):
        self.gpus = [FakeGpu()] if gpus is None else list(gpus)
        for position, gpu in enumerate(self.gpus):
            gpu.uuid = fake_uuid(position) if gpu.uuid is None else gpu.uuid
            gpu.bus = 0x1A + 0x10 * position if gpu.bus is None else gpu.bus
        # NVML enumerates in PCI bus order, whatever order the test listed them in
        self.gpus.sort(key=lambda g: g.bus)
        self.clock = clock
        self.t0 = clock()
        self.library_found = library_found
        self.driver_version = driver_version
        self.init_count = 0
        self.calls: dict[str, int] = {}
        self.module = self._build_module()

    def elapsed(self, when: float | None = None) -> float:
        return (self.clock() if when is None else when) - self.t0

    def exact_joules(self, gpu: int, start: float, end: float) -> float:
        """True energy of GPU ``gpu`` between two clock readings."""
        trace = self.gpus[gpu].trace
        return trace.energy(end - self.t0) - trace.energy(start - self.t0)

    # -- the API -----------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def _check(self, gpu: FakeGpu | None = None) -> None:
        if self.init_count == 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)
        if gpu is not None and gpu.fail is not None:
            raise NVMLError(gpu.fail)

    def nvmlInit(self) -> None:
        self._count("nvmlInit")
        if not self.library_found:
            raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
        self.init_count += 1

    def nvmlShutdown(self) -> None:
        self._count("nvmlShutdown")
        self._check()
        self.init_count -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check()
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._check()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu:
        self._check()
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return gpu
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetHandleByPciBusId(self, pciBusId: str) -> FakeGpu:
        self._check()
        try:
            domain, bus, rest = pciBusId.split(":")
            wanted = (int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16))
        except ValueError:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT) from None
        for gpu in self.gpus:
            if (0, gpu.bus, 0) == wanted:
                return gpu
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str:
        self._check(handle)
        return handle.uuid

    def nvmlDeviceGetPciInfo(self, handle: FakeGpu) -> nvmlPciInfo_t:
        self._check(handle)
        return pci_info(0, handle.bus)

    def nvmlDeviceGetPciInfo_v3(self, handle: FakeGpu) -> nvmlPciInfo_t:
        return self.nvmlDeviceGetPciInfo(handle)

    def nvmlDeviceGetTemperature(self, handle: FakeGpu, sensor: int) -> int:
        self._count("nvmlDeviceGetTemperature")
        self._check(handle)
        if sensor != NVML_TEMPERATURE_GPU:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if handle.temperature is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        value = handle.temperature(self.elapsed()) if callable(handle.temperature) else handle.temperature
        return int(value)  # the real call returns a c_uint's value: whole degrees

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        self._check(handle)
        return handle.name

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: FakeGpu) -> int:
        self._check(handle)
        if handle.power_limit_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return handle.power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: FakeGpu) -> int:
        self._count("nvmlDeviceGetTotalEnergyConsumption")
        self._check(handle)
        if not handle.counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return handle.counter_offset_mj + int(handle.trace.energy(self.elapsed()) * 1000)

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        self._count("nvmlDeviceGetPowerUsage")
        self._check(handle)
        if not handle.power_works:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return round(handle.trace.power(self.elapsed()) * 1000)

    def _build_module(self) -> types.ModuleType:
        module = types.ModuleType("pynvml", "fake pynvml for tests")
        for name, value in globals().items():
            if name.startswith(("NVML_", "NVMLError", "nvmlPciInfo")):
                setattr(module, name, value)
        for name in dir(self):
            if name.startswith("nvml"):
                setattr(module, name, getattr(self, name))
        return module
