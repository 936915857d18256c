"""Which narrow number formats this CPU runs natively, and the OpenMP settings that bias the CPU-time estimate.

A 16-bit format is native when the CPU has instructions for its arithmetic; without them torch emulates it, several
times slower than float32, so the study's stego trains in float32 there (``energy_bench.study.train``). The flags:

* bfloat16: ``avx512_bf16`` (AVX-512 dot products, Cooper Lake, Zen 4 and newer) or ``amx_bf16`` (AMX tiles);
* float16: ``avx512_fp16`` (Sapphire Rapids and newer) or ``amx_fp16`` (Granite Rapids);
* ``amx_tile``: the AMX tile registers that ``amx_bf16``/``amx_fp16`` compute on.

The CPU's identity comes from :mod:`energy_bench.meters.cpus` (the estimate's coefficients read the same fields).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from energy_bench.meters import cpus

CPUINFO = "/proc/cpuinfo"
#: format name -> the CPU flags any one of which makes its arithmetic native
NARROW_FORMAT_FLAGS: dict[str, tuple[str, ...]] = {
    "bfloat16": ("avx512_bf16", "amx_bf16"),
    "float16": ("avx512_fp16", "amx_fp16"),
}
AMX_TILE_FLAG = "amx_tile"
#: environment variables of the OpenMP runtimes (libgomp, Intel's and LLVM's) that change how waiting threads spin
OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def native_formats(cpu: cpus.CpuId) -> dict[str, list[str]]:
    """Format name -> the flags ``cpu`` has for it (an empty list: emulated, not native)."""
    return {name: [f for f in needs if f in cpu.flags] for name, needs in NARROW_FORMAT_FLAGS.items()}


def read_cpu(path: str = CPUINFO) -> cpus.CpuId | None:
    """This machine's CPU, or None where there is no /proc/cpuinfo (macOS)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return cpus.parse_cpuinfo(f.read())
    except OSError:
        return None


def describe_cpu(cpu: cpus.CpuId) -> dict[str, Any]:
    """The CPU as plain JSON: identity, the estimate's architecture match, narrow formats, AMX."""
    match = cpus.match_cpu(cpu)
    return {
        "model_name": cpu.name,
        "vendor": cpu.vendor,
        "family": cpu.family,
        "model": cpu.model,
        "identity": cpu.describe(),
        "architecture": match.architecture,
        "architecture_match": match.match,
        "native_formats": native_formats(cpu),
        "amx_tile": AMX_TILE_FLAG in cpu.flags,
    }


def usable_cpus() -> int | None:
    """Logical CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def openmp_settings(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """The OpenMP variables of :data:`OPENMP_VARIABLES` as the environment sets them (None: unset)."""
    env = os.environ if environ is None else environ
    return {name: env.get(name) for name in OPENMP_VARIABLES}
