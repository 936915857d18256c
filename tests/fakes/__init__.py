"""Test doubles for the meters: a fake ``pynvml``, a fake powercap tree, a CPU-burning child."""

from __future__ import annotations

import time


def burn_cpu(seconds: float) -> None:
    """Spin until this process has used ``seconds`` of CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def child_burner(ready, go, done, leave, seconds: float) -> None:
    """multiprocessing target: say ready, wait for go, burn, say done, wait for leave."""
    ready.set()
    go.wait()
    burn_cpu(seconds)
    done.set()
    leave.wait()
