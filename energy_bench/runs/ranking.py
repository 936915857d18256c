"""Rank the variants of each group of benchmarks by energy, against a reference variant, and say what saved energy.

Works on any run, live or saved, from plain benchmark mappings (``name``, ``fullname``, ``group``, ``param``,
``extra_info``), so the study's terminal summary and ``energy-bench report`` say the same thing:

* group: pytest-benchmark's ``group``, else ``extra_info.model``, else the test name without its parameters;
* variant: ``extra_info.variant``, else ``extra_info.compressor`` (the study), else the parametrization id, else the
  name; the reference variant (default ``baseline``) is what ratios are taken against;
* metric: joules to the group's target (``extra_info.energy.to_target``) when the group's benchmarks ran to a
  target, else joules per call. A variant that did not reach the target has no ratio: it is listed as not reached,
  with the accuracy it got.

A ratio counts as a saving (or a cost) only when it is further from 1 than :data:`NOISE_SIGMAS` combined standard
errors of the two joules figures, estimated from their per-round spread; otherwise "no clear difference". Plain
Python: no pytest, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from energy_bench.runs.text import format_accuracy, format_number, format_ratio, printable

DEFAULT_REFERENCE = "baseline"
TO_TARGET = "to target"
PER_CALL = "per call"
#: a ratio is a clear saving or cost when |log ratio| exceeds this many combined relative standard errors
NOISE_SIGMAS = 2.0

# verdicts, in ranking order after the energy itself
REFERENCE, SAVED, SAME, COST, NOT_REACHED, NO_REFERENCE, NO_TARGET, FAILED, NOT_MEASURED = (
    "reference",
    "saved",
    "no clear difference",
    "cost more",
    "not reached",
    "no reference",
    "no target",
    "failed",
    "not measured",  # no energy record at all (a benchmark without the energy fixture): nothing failed
)
RANKED_BY_JOULES = (REFERENCE, SAVED, SAME, COST, NO_REFERENCE)


@dataclass(frozen=True)
class Entry:
    """What the ranking needs of one benchmark."""

    fullname: str
    group: str
    variant: str
    metric: str | None = None  # TO_TARGET, PER_CALL, or None (no energy record)
    joules: float | None = None
    seconds: float | None = None
    noise: float | None = None  # relative standard error of ``joules``
    reached: bool | None = None
    rounds: int | None = None
    max_rounds: int | None = None
    accuracy: float | None = None
    target: float | None = None
    estimated: bool = False
    grams: float | None = None
    cost: float | None = None
    currency: str | None = None
    curve_joules: tuple[float, ...] = ()
    curve_values: tuple[float, ...] = ()
    is_model: bool = False  # the group is a model of the study (extra_info.model)
    error: str | None = None


@dataclass(frozen=True)
class Ranked:
    entry: Entry
    ratio: float | None
    verdict: str


@dataclass
class GroupRanking:
    group: str
    metric: str
    reference: Entry | None
    ranked: list[Ranked] = field(default_factory=list)
    variants: tuple[str, ...] = ()  # in the run's order

    @property
    def estimated(self) -> bool:
        return any(r.entry.estimated for r in self.ranked)

    @property
    def noun(self) -> str:
        return "model" if self.ranked and all(r.entry.is_model for r in self.ranked) else "group"


# ---------------------------------------------------------------------------- entries


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _text(value: Any) -> str | None:
    """A name from the file, on one line (names come from files anyone can write: see runs.text.printable)."""
    return printable(value) if isinstance(value, str) and value else None


def _get(bench: Any, key: str) -> Any:
    return bench.get(key) if isinstance(bench, Mapping) else getattr(bench, key, None)


def entry_from(bench: Any) -> Entry:
    """An :class:`Entry` from a saved benchmark (a dict) or a live pytest-benchmark Metadata object."""
    name = printable(str(_get(bench, "name") or _get(bench, "fullname") or ""))
    extra = _get(bench, "extra_info")
    extra = extra if isinstance(extra, Mapping) else {}
    group = _text(_get(bench, "group")) or _text(extra.get("model")) or name.split("[", 1)[0]
    variant = _text(extra.get("variant")) or _text(extra.get("compressor")) or _text(_get(bench, "param")) or name
    common = {
        "fullname": printable(str(_get(bench, "fullname") or name)),
        "group": group,
        "variant": variant,
        "accuracy": _number(extra.get("accuracy")),
        "is_model": _text(extra.get("model")) is not None,
    }
    energy = extra.get("energy")
    if not isinstance(energy, Mapping):
        return Entry(**common)
    if energy.get("error"):
        return Entry(**common, error=printable(str(energy["error"])))
    estimated = energy.get("source") == "estimated"
    carbon = energy.get("carbon") if isinstance(energy.get("carbon"), Mapping) else {}
    cost = energy.get("cost") if isinstance(energy.get("cost"), Mapping) else {}
    to_target = energy.get("to_target")
    if isinstance(to_target, Mapping) and _number(to_target.get("joules")) is not None:
        return _target_entry(common, energy, to_target, estimated, carbon, cost)
    per_call = energy.get("joules_per_call") if isinstance(energy.get("joules_per_call"), Mapping) else None
    per_call = per_call or (energy.get("joules") if isinstance(energy.get("joules"), Mapping) else {})
    mean, stddev, rounds = _number(per_call.get("mean")), _number(per_call.get("stddev")), per_call.get("rounds")
    noise = None
    if mean and stddev is not None and isinstance(rounds, int) and rounds > 0:
        noise = stddev / math.sqrt(rounds) / mean  # standard error of the mean, relative
    seconds = energy.get("seconds") if isinstance(energy.get("seconds"), Mapping) else {}
    iterations = energy.get("iterations") if isinstance(energy.get("iterations"), int) else 1
    round_seconds = _number(seconds.get("mean"))
    return Entry(
        **common,
        metric=PER_CALL,
        joules=mean,
        seconds=None if round_seconds is None else round_seconds / max(iterations, 1),
        noise=noise,
        estimated=estimated,
        grams=_number(carbon.get("grams_per_call")),
        cost=_number(cost.get("per_call")),
        currency=_text(cost.get("currency")),
    )


def _target_entry(
    common: dict[str, Any],
    energy: Mapping[str, Any],
    to_target: Mapping[str, Any],
    estimated: bool,
    carbon: Mapping[str, Any],
    cost: Mapping[str, Any],
) -> Entry:
    joules = float(to_target["joules"])
    rounds = to_target.get("rounds") if isinstance(to_target.get("rounds"), int) else None
    per_round = energy.get("joules") if isinstance(energy.get("joules"), Mapping) else {}
    stddev = _number(per_round.get("stddev"))
    noise = stddev * math.sqrt(rounds) / joules if stddev is not None and rounds and joules > 0 else None
    curve = to_target.get("curve") if isinstance(to_target.get("curve"), Mapping) else {}
    curve_joules = tuple(v for v in (_number(x) for x in curve.get("joules") or ()) if v is not None)
    curve_values = tuple(v for v in (_number(x) for x in curve.get("value") or ()) if v is not None)
    # the accuracy when the joules were counted: at the target round (the baseline ran on past it), else the last
    accuracy = common["accuracy"]
    if curve_values:
        accuracy = curve_values[min(rounds or len(curve_values), len(curve_values)) - 1]
    return Entry(
        **(common | {"accuracy": accuracy}),
        metric=TO_TARGET,
        joules=joules,
        seconds=_number(to_target.get("seconds")),
        noise=noise,
        reached=bool(to_target.get("reached")),
        rounds=rounds,
        max_rounds=to_target.get("max_rounds") if isinstance(to_target.get("max_rounds"), int) else None,
        target=_number(to_target.get("target")),
        estimated=estimated,
        grams=_number(carbon.get("grams_to_target")),
        cost=_number(cost.get("to_target")),
        currency=_text(cost.get("currency")),
        curve_joules=curve_joules,
        curve_values=curve_values,
    )


# ---------------------------------------------------------------------------- ranking


def rank(benchmarks: Iterable[Any], reference: str = DEFAULT_REFERENCE) -> list[GroupRanking]:
    """Every group's variants, best first, with ratios against ``reference`` (groups in first-seen order)."""
    groups: dict[str, list[Entry]] = {}
    for bench in benchmarks:
        entry = bench if isinstance(bench, Entry) else entry_from(bench)
        groups.setdefault(entry.group, []).append(entry)
    return [rank_group(name, entries, reference) for name, entries in groups.items()]


def rank_group(group: str, entries: Sequence[Entry], reference: str = DEFAULT_REFERENCE) -> GroupRanking:
    metric = TO_TARGET if any(e.metric == TO_TARGET for e in entries) else PER_CALL
    ref = next((e for e in entries if e.variant == reference), None)
    usable_ref = ref if ref is not None and _usable(ref, metric) else None
    ranked = [_judge(e, metric, reference, usable_ref) for e in entries]
    order = {verdict: i for i, verdict in enumerate((*RANKED_BY_JOULES, NOT_REACHED, NO_TARGET, FAILED, NOT_MEASURED))}

    def key(r: Ranked) -> tuple:
        by_joules = r.verdict in RANKED_BY_JOULES
        group_order = 0 if by_joules else order.get(r.verdict, len(order))
        accuracy = r.entry.accuracy if r.entry.accuracy is not None else -1.0
        return (group_order, r.entry.joules if by_joules and r.entry.joules is not None else 0.0, -accuracy)

    return GroupRanking(group, metric, ref, sorted(ranked, key=key), tuple(dict.fromkeys(e.variant for e in entries)))


def _usable(entry: Entry, metric: str) -> bool:
    return (
        entry.error is None
        and entry.metric == metric
        and entry.joules is not None
        and entry.joules > 0
        and (metric != TO_TARGET or bool(entry.reached))
    )


def _judge(entry: Entry, metric: str, reference: str, ref: Entry | None) -> Ranked:
    if entry.error is None and entry.metric is None:
        return Ranked(entry, None, NOT_MEASURED)
    if entry.error is not None:
        return Ranked(entry, None, FAILED)
    if entry.metric != metric:
        return Ranked(entry, None, NO_TARGET)
    if metric == TO_TARGET and not entry.reached:
        return Ranked(entry, None, NOT_REACHED)
    if entry.variant == reference:
        return Ranked(entry, 1.0 if ref is not None else None, REFERENCE)
    if ref is None or entry.joules is None:
        return Ranked(entry, None, NO_REFERENCE)
    ratio = entry.joules / ref.joules
    noise = math.hypot(entry.noise or 0.0, ref.noise or 0.0)
    if ratio > 0 and abs(math.log(ratio)) > NOISE_SIGMAS * noise:
        return Ranked(entry, ratio, SAVED if ratio < 1 else COST)
    return Ranked(entry, ratio, SAME)


# ---------------------------------------------------------------------------- words


def _span(ratios: Sequence[float]) -> str:
    low, high = min(ratios), max(ratios)
    return f"{low:.2f}x" if math.isclose(low, high, rel_tol=0.005) else f"{low:.2f}-{high:.2f}x"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def summary_lines(rankings: Sequence[GroupRanking], reference: str = DEFAULT_REFERENCE) -> list[str]:
    """Plain sentences: which variants saved energy at equal accuracy (or per call), which did not, which never
    reached the target. Empty when no group has the reference and another variant."""
    lines = []
    for metric in (TO_TARGET, PER_CALL):
        groups = [g for g in rankings if g.metric == metric and g.reference is not None and len(g.ranked) > 1]
        if groups:
            lines += _metric_summary(groups, metric, reference)
    return lines


def _metric_summary(groups: Sequence[GroupRanking], metric: str, reference: str) -> list[str]:
    noun = groups[0].noun
    estimated = any(g.estimated for g in groups)
    energy = "estimated energy (not measured)" if estimated else "measured energy"
    if metric == TO_TARGET:
        head = (
            f"At equal accuracy ({reference}'s accuracy minus the tolerance, per {noun}), on this hardware, "
            f"{energy}, joules to target against {reference}:"
        )
    else:
        head = f"Per call, without an accuracy target (each at its own accuracy), {energy}, against {reference}:"
    variants = list(dict.fromkeys(v for g in groups for v in g.variants if v != reference))
    lines = [head]
    saved_on: dict[str, int] = {}
    for variant in variants:
        results = [(g, r) for g in groups for r in g.ranked if r.entry.variant == variant]
        line, saved_on[variant] = _variant_sentence(variant, results, len(groups), noun, metric)
        lines.append(f"- {line}")
    saved = [f"{v} ({n} of {len(groups)})" for v, n in saved_on.items() if n]
    did_not = [v for v, n in saved_on.items() if not n]
    what = "Saved energy at equal accuracy" if metric == TO_TARGET else "Cheaper per call"
    verdict = f"{what} on this hardware: {', '.join(saved) if saved else 'none'}"
    verdict += f"; did not: {', '.join(did_not)}." if did_not else "."
    lines.insert(1, verdict)
    return lines


def _variant_sentence(
    variant: str, results: Sequence[tuple[GroupRanking, Ranked]], total: int, noun: str, metric: str
) -> tuple[str, int]:
    by_verdict: dict[str, list[tuple[GroupRanking, Ranked]]] = {}
    for group, ranked in results:
        by_verdict.setdefault(ranked.verdict, []).append((group, ranked))
    saved = by_verdict.get(SAVED, [])
    parts = []
    verb = "saved energy" if metric == TO_TARGET else "cost less per call"
    if saved:
        ratios = [r.ratio for _, r in saved if r.ratio is not None]
        parts.append(f"{verb} on {len(saved)} of {_plural(total, noun)} ({_span(ratios)})")
    else:
        parts.append(f"{verb} on none of {_plural(total, noun)}")
    for verdict, words in ((SAME, "no clear difference"), (COST, "cost more")):
        found = by_verdict.get(verdict, [])
        if found:
            ratios = [r.ratio for _, r in found if r.ratio is not None]
            parts.append(f"{words} on {len(found)} ({_span(ratios)})")
    missed = by_verdict.get(NOT_REACHED, [])
    if missed:
        where = ", ".join(
            f"{g.group} {format_accuracy(r.entry.accuracy) or '?'} after {r.entry.rounds} rounds" for g, r in missed
        )
        parts.append(f"did not reach the target on {len(missed)} ({where})")
    others = sum(len(by_verdict.get(v, [])) for v in (FAILED, NO_REFERENCE, NO_TARGET, NOT_MEASURED))
    if others:
        parts.append(f"not comparable on {others}")
    return f"{variant}: " + "; ".join(parts) + ".", len(saved)


# ---------------------------------------------------------------------------- tables


def ranking_rows(rankings: Sequence[GroupRanking]) -> list[dict[str, Any]]:
    """Plain rows (one per benchmark, groups in order, best first) for tables, csv and json."""
    rows = []
    for group in rankings:
        for position, ranked in enumerate(group.ranked, 1):
            e = ranked.entry
            rows.append(
                {
                    "group": group.group,
                    "rank": position,
                    "variant": e.variant,
                    "metric": group.metric,
                    "joules": e.joules,
                    "ratio": ranked.ratio,
                    "verdict": ranked.verdict,
                    "reached": e.reached,
                    "rounds": e.rounds,
                    "max_rounds": e.max_rounds,
                    "seconds": e.seconds,
                    "accuracy": e.accuracy,
                    "target": e.target,
                    "source": "estimated" if e.estimated else ("measured" if e.metric else None),
                    "grams_co2e": e.grams,
                    "cost": e.cost,
                    "currency": e.currency,
                    "benchmark": e.fullname,
                }
            )
    return rows


def table_cells(group: GroupRanking) -> tuple[list[str], list[list[str]]]:
    """Headers and printable cells of one group's ranking (``~`` marks estimated joules)."""
    target = group.metric == TO_TARGET
    with_grams = any(r.entry.grams is not None for r in group.ranked)
    currency = next((r.entry.currency for r in group.ranked if r.entry.currency), None)
    headers = ["#", "variant", f"J {group.metric}", "ratio", *(["rounds"] if target else []), "accuracy"]
    headers += ["verdict"] + (["CO2e (g)"] if with_grams else []) + ([f"cost ({currency})"] if currency else [])
    rows = []
    for position, ranked in enumerate(group.ranked, 1):
        e = ranked.entry
        mark = "~" if e.estimated else ""
        joules = f"{mark}{format_number(e.joules)}" if e.joules is not None else ""
        row = [str(position), e.variant, joules, format_ratio(ranked.ratio)]
        if target:
            row.append("" if e.rounds is None else f"{e.rounds}/{e.max_rounds}" if e.max_rounds else str(e.rounds))
        row += [format_accuracy(e.accuracy), ranked.verdict if e.error is None else f"failed: {e.error}"]
        row += [f"{mark}{format_number(e.grams)}" if e.grams is not None else ""] if with_grams else []
        row += [f"{mark}{format_number(e.cost)}" if e.cost is not None else ""] if currency else []
        rows.append(row)
    return headers, rows


def group_title(group: GroupRanking) -> str:
    ref = group.reference
    target = next((r.entry.target for r in group.ranked if r.entry.target is not None), None)
    title = group.group
    if group.metric == TO_TARGET and target is not None:
        title += f": joules to accuracy >= {format_accuracy(target)}"
    elif group.metric == PER_CALL:
        title += ": joules per call"
    if ref is None:
        title += " (no reference variant)"
    return title


def render_rankings(rankings: Sequence[GroupRanking], fmt: str = "table", reference: str = DEFAULT_REFERENCE) -> str:
    """Each group's ranking as a table, then the summary sentences (``table`` or ``markdown``)."""
    from tabulate import tabulate

    if not rankings:
        return ""
    markdown = fmt == "markdown"
    blocks = ["## Ranking" if markdown else "Ranking"]
    for group in rankings:
        headers, rows = table_cells(group)
        table = tabulate(rows, headers=headers, tablefmt="github" if markdown else "simple", disable_numparse=True)
        blocks.append(f"### {group_title(group)}\n\n{table}" if markdown else f"{group_title(group)}\n{table}")
    summary = summary_lines(rankings, reference)
    if summary:
        blocks.append("\n".join(summary))
    if any(g.estimated for g in rankings):
        blocks.append("~ estimated energy, not measured")
    return "\n\n".join(blocks) + "\n"
