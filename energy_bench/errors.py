"""The package's exception root and warning category.

Every error energy-bench raises on purpose derives from :class:`EnergyBenchError`, so a caller can catch them all
in one place; each subclass lives with the code that raises it (``MeterUnavailable`` in ``meters``,
``RunLoadError`` in ``runs.parse``, ...) and also derives from the built-in type it refines.
"""

from __future__ import annotations


class EnergyBenchError(Exception):
    """Root of every error energy-bench raises on purpose."""


class EnergyBenchWarning(UserWarning):
    """Something about a measurement the user should know (a fallback, a too-short window)."""
