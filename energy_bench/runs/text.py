"""How numbers and names are written in every table energy-bench prints (terminal, markdown, csv cells).

One place, so the live table and the saved-run tables agree. ``None`` is written as an empty cell; a number that
is not finite (which validated records never hold) as ``n/a``, never as ``nan`` or ``inf``.
"""

from __future__ import annotations

import math
import unicodedata

#: what a change relative to a zero baseline is written as (there is no percentage of zero)
NOT_APPLICABLE = "n/a"
#: relative changes at least this large (in percent) are written in scientific notation, not as 300 digits
_HUGE_PERCENT = 1e5


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def format_number(value: float | None) -> str:
    """Joules, watts and plain quantities: four significant digits."""
    if value is None:
        return ""
    return f"{value:.4g}" if math.isfinite(value) else NOT_APPLICABLE


def format_duration(value: float | None) -> str:
    """Seconds with a unit that keeps the number readable: ``31.74 ms``."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return NOT_APPLICABLE
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {unit}"
    return f"{value / 1e-9:.4g} ns"


def format_accuracy(value: float | None) -> str:
    """A fraction in 0..1 as a percentage: ``93.00%``."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    return f"{value * 100:.2f}%" if math.isfinite(value) else NOT_APPLICABLE


def format_percent(value: float | None) -> str:
    """A signed relative change: ``+4.2%`` (``+1.2e+06%`` when huge)."""
    if value is None:
        return ""
    if not math.isfinite(value):
        return NOT_APPLICABLE
    return f"{value:+.3g}%" if abs(value) >= _HUGE_PERCENT else f"{value:+.1f}%"


def format_points(value: float | None) -> str:
    """A signed change in accuracy points: ``-1.25pt``."""
    if value is None:
        return ""
    return f"{value:+.2f}pt" if math.isfinite(value) else NOT_APPLICABLE


def format_ratio(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if math.isfinite(value) else NOT_APPLICABLE


def format_change(baseline: float, current: float, percent: float | None, unit: str = "") -> str:
    """A change for a reader: ``+4.2%``; against a zero baseline the absolute change, ``+5 J, n/a%``."""
    if percent is not None:
        return format_percent(percent)
    difference = current - baseline
    if not math.isfinite(difference):
        return NOT_APPLICABLE
    return f"{difference:+.4g}{' ' + unit if unit else ''}, {NOT_APPLICABLE}%"


def printable(text: str) -> str:
    """``text`` on one line: control characters (newlines, tabs, escape codes) written as ``\\n``, ``\\x1b``...

    Names and reasons come from files anyone can write; a newline in one must not forge a line of the report.
    """
    if text.isprintable():
        return text
    return "".join(_escape(c) if not c.isprintable() and c != " " else c for c in text)


def _escape(char: str) -> str:
    if unicodedata.category(char) in ("Zs",):  # unusual spaces (no-break...) are harmless
        return char
    escaped = repr(char)[1:-1]
    return escaped if escaped != char else f"\\u{ord(char):04x}"
