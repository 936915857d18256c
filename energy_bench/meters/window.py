"""One measurement window: synchronize the torch devices in use, then read the meter.

GPU work is asynchronous: without a synchronize, a window could close before the kernels it
launched have run, and their joules would land in the next window. torch is never imported
here just to synchronize: when the code under test has not imported it, or has not started
CUDA, there is nothing to wait for.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from energy_bench.meters.base import Meter, Reading


def synchronize_devices() -> None:
    """Wait for every CUDA device torch has started (no-op without torch or CUDA)."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None) if torch is not None else None
    if cuda is None or not cuda.is_initialized():
        return
    for index in range(cuda.device_count()):
        cuda.synchronize(index)


def open_window(meter: Meter) -> Any:
    synchronize_devices()
    return meter.begin()


def close_window(meter: Meter, mark: Any) -> Reading:
    synchronize_devices()
    return meter.end(mark)


def idle_watts(meter: Meter, seconds: float) -> dict[str, float]:
    """Mean watts per domain over ``seconds`` of doing nothing (the idle baseline)."""
    mark = open_window(meter)
    time.sleep(seconds)
    reading = close_window(meter, mark)
    if reading.seconds <= 0:
        return {domain: 0.0 for domain in reading.joules}
    return {domain: float(joules) / reading.seconds for domain, joules in reading.joules.items()}
