"""How numbers are written in every table energy-bench prints (terminal, markdown, csv cells).

One place, so the live table and the saved-run tables agree. ``None`` is written as an empty cell.
"""

from __future__ import annotations


def format_number(value: float | None) -> str:
    """Joules, watts and plain quantities: four significant digits."""
    return "" if value is None else f"{value:.4g}"


def format_duration(value: float | None) -> str:
    """Seconds with a unit that keeps the number readable: ``31.74 ms``."""
    if value is None:
        return ""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value / 1e-9:.4g} ns"


def format_accuracy(value: float | None) -> str:
    """A fraction in 0..1 as a percentage: ``93.00%``."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    return f"{value * 100:.2f}%"


def format_percent(value: float | None) -> str:
    """A signed relative change: ``+4.2%``."""
    return "" if value is None else f"{value:+.1f}%"


def format_points(value: float | None) -> str:
    """A signed change in accuracy points: ``-1.25pt``."""
    return "" if value is None else f"{value:+.2f}pt"


def format_ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
