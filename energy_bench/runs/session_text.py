"""Verdicts across sessions (:mod:`energy_bench.runs.sessions`) as rows, tables and plain sentences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from energy_bench.runs.ranking import COST, NOT_REACHED, PER_CALL, SAME, SAVED, TO_TARGET
from energy_bench.runs.sessions import NOT_COMPARABLE, ONE_SESSION_ONLY, PooledVariant

SESSION_VERDICTS = (SAVED, SAME, COST, ONE_SESSION_ONLY, NOT_REACHED, NOT_COMPARABLE)


def confidence(alpha: float) -> str:
    return f"{100 * (1 - alpha):g}%"


def pooled_rows(pooled: Sequence[PooledVariant], alpha: float) -> list[dict[str, Any]]:
    """Plain rows for JSON: each variant's per-session ratios, their count n, the interval and the verdict."""
    return [
        {
            "group": p.group,
            "metric": p.metric,
            "variant": p.variant,
            "sessions": p.sessions,
            "n": p.n,
            "ratios": list(p.ratios),
            "ratio": p.ratio,
            "low": p.low,
            "high": p.high,
            "confidence": 1 - alpha,
            "not_reached": p.not_reached,
            "verdict": p.verdict,
            "source": "estimated" if p.estimated else "measured",
        }
        for p in pooled
    ]


def _interval_text(p: PooledVariant) -> str:
    return "" if p.low is None or p.high is None else f"{p.low:.3f}-{p.high:.3f}"


def pooled_cells(pooled: Sequence[PooledVariant], alpha: float) -> tuple[list[str], list[list[str]]]:
    """Headers and printable cells of the pooled table (``~`` marks estimated joules)."""
    headers = ["group", "variant", "joules", "ratio per session", "n", "ratio", f"{confidence(alpha)} interval"]
    headers.append("verdict")
    rows = []
    for p in pooled:
        verdict = p.verdict + (f" (not reached in {p.not_reached} of {p.sessions})" if p.not_reached else "")
        rows.append(
            [
                p.group,
                p.variant,
                ("~" if p.estimated else "") + p.metric,
                ", ".join(f"{r:.3f}" for r in p.ratios),
                str(p.n),
                "" if p.ratio is None else f"{p.ratio:.3f}",
                _interval_text(p),
                verdict,
            ]
        )
    return headers, rows


def pooled_summary(pooled: Sequence[PooledVariant], reference: str, sessions: int, alpha: float) -> list[str]:
    """Plain sentences per metric: what saved energy in every session's spread, what cost more, what cannot say."""
    lines = []
    for metric in (TO_TARGET, PER_CALL):
        found = [p for p in pooled if p.metric == metric]
        if found:
            lines += _metric_summary(found, metric, reference, sessions, alpha)
    return lines


def _metric_summary(
    pooled: Sequence[PooledVariant], metric: str, reference: str, sessions: int, alpha: float
) -> list[str]:
    energy = "estimated energy (not measured)" if any(p.estimated for p in pooled) else "measured energy"
    what = f"joules to target (at {reference}'s accuracy)" if metric == TO_TARGET else "joules per call"
    groups = len(dict.fromkeys(p.group for p in pooled))
    head = (
        f"Across {sessions} sessions, {energy}, {what} against {reference}; a verdict needs the "
        f"{confidence(alpha)} t interval of the ratio over the sessions wholly below or above 1:"
    )
    variants = list(dict.fromkeys(p.variant for p in pooled))
    saved = {v: sum(p.verdict == SAVED for p in pooled if p.variant == v) for v in variants}
    verb = "Saved energy at equal accuracy" if metric == TO_TARGET else "Cheaper per call"
    listed = [f"{v} ({n} of {groups})" for v, n in saved.items() if n]
    verdict = f"{verb} across sessions: {', '.join(listed) or 'none'}"
    verdict += f"; did not: {', '.join(v for v, n in saved.items() if not n)}." if not all(saved.values()) else "."
    lines = [head, verdict]
    for variant in variants:
        parts = [_part(v, [p for p in pooled if p.variant == variant and p.verdict == v]) for v in SESSION_VERDICTS]
        lines.append(f"- {variant}: " + "; ".join(part for part in parts if part) + ".")
    return lines


def _part(verdict: str, found: Sequence[PooledVariant]) -> str:
    if not found:
        return ""
    where = ", ".join(
        f"{p.group} {p.ratio:.2f}x" + (f" [{_interval_text(p)}]" if p.low is not None else "")
        if p.ratio is not None
        else p.group
        for p in found
    )
    return f"{verdict} on {len(found)} ({where})"


def render_pooled(
    pooled: Sequence[PooledVariant], fmt: str, reference: str, labels: Sequence[str], alpha: float
) -> str:
    """The pooled table and its summary, ``table`` or ``markdown``."""
    from tabulate import tabulate

    markdown = fmt == "markdown"
    title = f"Verdicts across {len(labels)} sessions ({', '.join(labels)})"
    headers, rows = pooled_cells(pooled, alpha)
    table = tabulate(rows, headers=headers, tablefmt="github" if markdown else "simple", disable_numparse=True)
    blocks = [f"## {title}" if markdown else title, table]
    summary = pooled_summary(pooled, reference, len(labels), alpha)
    if summary:
        blocks.append("\n".join(summary))
    if any(p.estimated for p in pooled):
        blocks.append("~ estimated energy, not measured")
    return "\n\n".join(blocks) + "\n"
