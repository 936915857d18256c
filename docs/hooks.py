"""MkDocs hooks: the parts of pages that must agree with the code or with measurements are generated.

A block from a line ``<!-- generated: NAME -->`` to a line ``<!-- end generated: NAME -->`` holds what
:data:`GENERATORS` renders for NAME. The rendered text is committed inside the block, so a page reads the same on
GitHub as on the site; ``python docs/hooks.py`` rewrites every block (``--check``: only say which pages are stale),
the build renders them again, and the tests fail when a committed block is not what its generator renders:

* ``options``: every pytest option of the harness and of the study, taken from the plugins themselves;
* ``results-*``: measured figures rendered from the saved runs and benchmark outputs in ``docs/data/`` (see
  docs/data/README.md for what each file is and the command that produced it). Figures are never typed by hand.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = re.compile(r"^<!-- generated: ([a-z0-9-]+) -->$", re.M)
#: a generated block: its opening marker, the committed text, its closing marker (absent: an empty block)
BLOCK = re.compile(
    r"^<!-- generated: (?P<name>[a-z0-9-]+) -->\n(?:(?P<body>.*?)\n)?<!-- end generated: (?P=name) -->$"
    r"|^<!-- generated: (?P<bare>[a-z0-9-]+) -->$",
    re.M | re.S,
)
DOCS = Path(__file__).parent
DATA = Path(__file__).parent / "data"


# ---------------------------------------------------------------------------- options


class _Recorder:
    """Stands in for pytest's Parser: records what a plugin's ``pytest_addoption`` registers."""

    def __init__(self) -> None:
        self.groups: dict[str, list[dict[str, Any]]] = {}
        self.inis: dict[str, str] = {}
        self._group = ""

    def getgroup(self, name: str, description: str = "") -> _Recorder:
        self._group = description or name
        self.groups.setdefault(self._group, [])
        return self

    def addoption(self, *flags: str, **kwargs: Any) -> None:
        self.groups[self._group].append({"flags": flags, **kwargs})

    def addini(self, name: str, help: str, **_kwargs: Any) -> None:
        self.inis[help] = name


def _plugin_modules() -> list[Any]:
    core = importlib.import_module("energy_bench.plugin")
    names = ["energy_bench.plugin", *core.pytest_plugins, "energy_bench.study.plugin"]
    return [importlib.import_module(name) for name in names]


def render_options() -> str:
    recorder = _Recorder()
    for module in _plugin_modules():
        if hasattr(module, "pytest_addoption"):
            module.pytest_addoption(recorder)
    blocks = []
    for group, options in recorder.groups.items():
        rows = ["| option | ini | meaning |", "| --- | --- | --- |"]
        for option in options:
            flag = option["flags"][0]
            if option.get("nargs") == "?":
                flag += "[=VALUE]"
            help_text = option.get("help", "").replace("%%", "%").replace("|", "\\|")
            ini = recorder.inis.get(option.get("help", ""))
            rows.append(f"| `{flag}` | {f'`{ini}`' if ini else ''} | {help_text} |")
        blocks.append(f"### {group}\n\n" + "\n".join(rows))
    return "\n\n".join(blocks)


# ---------------------------------------------------------------------------- vendored tables


def render_estimate_coefficients() -> str:
    """Each architecture the estimate knows, the coefficients row it uses, and the watts (from the vendored table)."""
    from energy_bench.meters import cpus

    table = cpus.coefficients()
    rows = ["| architecture | coefficients used | max W per vCPU (the estimate) | min W | lower bound (max - min) |"]
    rows.append("| --- | --- | --- | --- | --- |")
    for arch in cpus.ARCHITECTURES:
        row = table["architectures"][arch.coefficients]
        used = f"{arch.coefficients} (proxy)" if arch.proxy else arch.coefficients
        low, high = row["min_watts"], row["max_watts"]
        rows.append(f"| {arch.name} | {used} | {high:g} | {low:g} | {high - low:.3g} |")
    low, high = table["default"]["min_watts"], table["default"]["max_watts"]
    rows.append(f"| any other CPU | default ({table['default']['basis']}) | {high:g} | {low:g} | {high - low:.3g} |")
    source = table["_source"]
    rows.append(
        f"\nSource: {source['name']}, commit `{source['commit'][:8]}` ({source['date']}), "
        f"{source['license'].split(' (')[0]}; "
        f"{source['what']}."
    )
    return "\n".join(rows)


def render_carbon_regions() -> str:
    """The parts of the vendored grid-intensity table: codes, how many, source, year, license."""
    from energy_bench.runs import grid

    table = grid.table()
    countries = table["countries"]
    years = sorted({row["year"] for row in countries["rows"].values()})
    rows = ["| codes | entries | source | year | license |", "| --- | --- | --- | --- | --- |"]
    rows.append(
        f"| country: `FR`, `FRA` | {len(countries['rows'])} | {countries['source']} | "
        f"{years[0]}-{years[-1]} (most {max(years, key=[r['year'] for r in countries['rows'].values()].count)}) | "
        f"{countries['license']} |"
    )
    for provider, part in table["clouds"].items():
        example = sorted(part["rows"])[0]
        rows.append(
            f"| `{provider}:REGION`, e.g. `{provider}:{example}` | {len(part['rows'])} | {part['source']} | "
            f"{part.get('year') or part['period']} | {part['license'].split(' (')[0]} |"
        )
    return "\n".join(rows)


# ---------------------------------------------------------------------------- measured results


#: the study's two sessions on one machine (the first cold: pretraining and compression included), per CPU kind:
#: the AVX2-only development VM, and two kinds with avx512_bf16 (see each folder's README.md for how they were made)
STUDY_KINDS = {
    "": ("study-1.json", "study-2.json"),
    "zen4": ("zen4/study-1.json", "zen4/study-2.json"),
    "zen5": ("zen5/study-1.json", "zen5/study-2.json"),
}
STUDY_RUNS = STUDY_KINDS[""]


def _load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _machine(run: dict[str, Any]) -> str:
    info = run.get("machine_info", {})
    cpu = info.get("cpu", {})
    energy = info.get("energy", {})
    flags = set(cpu.get("flags", []))
    kind = "avx512_bf16" if "avx512_bf16" in flags else "AVX2 only (no avx512_bf16)" if "avx2" in flags else "?"
    text = f"{cpu.get('brand_raw', 'unknown CPU')}, {cpu.get('count', '?')} logical cores, {kind}; "
    text += f"Python {info.get('python_version', '?')}"
    if "meter" in energy:  # a run of energy benchmarks (the field benchmarks' own run has none: its sessions do)
        text += f"; meter `{energy.get('meter', '?')}` ({energy.get('source', '?')} joules)"
    return text


def render_study_machine(runs: tuple[str, str] = STUDY_RUNS) -> str:
    run = _load(runs[0])
    cpu = run.get("machine_info", {}).get("cpu", {})
    when = ", ".join(_load(name).get("datetime", "?")[:16].replace("T", " ") for name in runs)
    return (
        f"Machine: {_machine(run)}; CPU family {cpu.get('family', '?')} model {cpu.get('model', '?')}. "
        f"Commit `{run.get('commit_info', {}).get('id', '?')[:10]}`; sessions saved {when} (UTC)."
    )


def render_study_times(runs: tuple[str, str] = STUDY_RUNS) -> str:
    rows = []
    for label, name in zip(("1 (cold: empty cache)", "2 (warm)"), runs, strict=True):
        run = _load(name)
        energy = run["machine_info"].get("energy", {})
        seconds = energy.get("session_seconds")
        # pytest-benchmark's total is per call, summed over rounds: times the calls per round, the rounds' time
        measured = sum(b["stats"]["total"] * b["stats"]["iterations"] for b in run["benchmarks"])
        rows.append(
            [label, f"{seconds / 60:.1f} min" if seconds else "?", f"{measured / 60:.1f} min", len(run["benchmarks"])]
        )
    return _table(["session", "wall time until saved", "in measured rounds", "benchmarks"], rows)


def _train_rankings(name: str) -> list[Any]:
    from energy_bench.runs import ranking

    run = _load(name)
    return ranking.rank(b for b in run["benchmarks"] if "::test_train[" in b["fullname"])


def render_study_ranking(runs: tuple[str, str] = STUDY_RUNS) -> str:
    """Per model and compressor: joules to target against the baseline in both sessions, rounds, accuracy."""
    from energy_bench.runs.text import format_accuracy, format_ratio

    sessions = [{(g.group, r.entry.variant): r for g in _train_rankings(n) for r in g.ranked} for n in runs]
    rows = []
    for key, first in sessions[0].items():
        second = sessions[1].get(key)
        if key[1] == "baseline":
            continue
        e = first.entry
        rounds = f"{e.rounds}/{e.max_rounds}" if e.max_rounds else str(e.rounds)
        same = second is None or second.verdict == first.verdict
        verdicts = first.verdict if same else f"{first.verdict} / {second.verdict}"
        rows.append(
            [key[0], key[1], format_ratio(first.ratio), format_ratio(second.ratio) if second else "",
             rounds, format_accuracy(e.accuracy), format_accuracy(e.target), verdicts]
        )  # fmt: skip
    headers = ["model", "compressor", "J to target / baseline (1)", "(2)", "rounds", "accuracy", "target", "verdict"]
    return _table(headers, rows)


def render_study_summary(runs: tuple[str, str] = STUDY_RUNS) -> str:
    from energy_bench.runs import ranking

    blocks = []
    for label, name in zip(("Session 1", "Session 2"), runs, strict=True):
        lines = ranking.summary_lines(_train_rankings(name))
        blocks.append(f"**{label}.** " + "\n".join(lines))
    return "\n\n".join(blocks)


def render_inference(runs: tuple[str, str] = STUDY_RUNS) -> str:
    """Inference joules per call against the model's uncompressed baseline, both sessions."""
    from energy_bench.runs import ranking
    from energy_bench.runs.text import format_ratio

    per_session = []
    for name in runs:
        run = _load(name)
        groups = ranking.rank(b for b in run["benchmarks"] if "::test_inference[" in b["fullname"])
        per_session.append({g.group: {r.entry.variant: r.ratio for r in g.ranked} for g in groups})
    variants = list(dict.fromkeys(v for g in per_session[0].values() for v in g if v != "baseline"))
    rows = []
    for group, ratios in per_session[0].items():
        other = per_session[1].get(group, {})
        cells = [f"{format_ratio(ratios.get(v))} / {format_ratio(other.get(v))}" for v in variants]
        rows.append([group.removesuffix("-inference"), *cells])
    return _table(["model", *variants], rows)


def render_overhead() -> str:
    run = _load(STUDY_RUNS[1])
    figures = next(b["extra_info"]["overhead"] for b in run["benchmarks"] if "overhead" in b.get("extra_info", {}))

    def number(value: Any, digits: str) -> str:
        return "n/a" if value is None else format(value, digits)

    rows = [
        ["meter", f"`{figures['meter']}`"],
        ["round length", f"{figures['round_seconds'] * 1000:.1f} ms"],
        ["meter cost per window", f"{figures['meter_cost_s_per_round'] * 1e6:.1f} us"],
        ["meter cost, share of the round (target <= 1 %)", f"{number(figures['meter_cost_percent'], '.3f')} %"],
        ["wall per round, energy vs benchmark (A/B, noisy)", f"{number(figures['wall_overhead_percent'], '+.2f')} %"],
        ["fastest timed round, energy vs benchmark", f"{number(figures['timed_min_change_percent'], '+.2f')} %"],
        ["polling thread CPU share", number(figures["polling_cpu_share"], ".4f")],
    ]
    return f"Measured on {_machine(run)}.\n\n" + _table(["figure", "value"], rows)


def render_estimate_vs_codecarbon() -> str:
    """benchmarks/estimate_vs_codecarbon.py's output: joules per workload and tool, mean and range over repeats."""
    data = _load("estimate-vs-codecarbon.json")

    def spread(values: list[float]) -> str:
        return f"{sum(values) / len(values):.4g} ({min(values):.4g}-{max(values):.4g})"

    rows = []
    for workload, tools in data["results"].items():
        for tool, runs in tools.items():
            lower = [r["lower_joules"] for r in runs if r.get("lower_joules") is not None]
            rows.append(
                [
                    workload,
                    tool,
                    spread([r["joules"] for r in runs]),
                    spread(lower) if lower else "",
                    spread([r["cpu_seconds"] for r in runs]),
                    spread([r["wall_seconds"] for r in runs]),
                    runs[0]["basis"],
                ]
            )
    args = data["args"]
    head = (
        f"Estimated, not measured (no RAPL on this machine): {args['repeats']} runs each, mean (min-max), on "
        f"{data['cpu']}."
    )
    return (
        head
        + "\n\n"
        + _table(
            ["workload", "tool", "CPU joules", "lower bound (J)", "CPU s", "wall s", "what the figure is based on"],
            rows,
        )
    )


def render_store_scale() -> str:
    """benchmarks/store_scale.py's figures: import rate, the gate's lookup and one series, per engine and size."""
    data = _load("store-scale.json")
    rows = [
        [
            engine,
            f"{row['runs']:,}",
            f"{row['records']:,}",
            f"{row['import_runs_per_s']:.0f}",
            f"{row['last5_seconds'] * 1000:.1f} ms",
            f"{row['series_seconds'] * 1000:.1f} ms ({row['series_points']:,} points)",
        ]
        for engine, checkpoints in data["engines"].items()
        for row in checkpoints
    ]
    head = (
        f"Measured on {data['cpu']} (2 vCPUs), Python {data['python']}, {data['benchmarks']} benchmarks per run; "
        "medians of 5 reads after a warm-up."
    )
    headers = ["engine", "runs", "records", "import (runs/s)", "history:last:5", "one benchmark's series"]
    return head + "\n\n" + _table(headers, rows)


#: the change-point field check's runs: one session per commit, and several per commit (in passes)
CHANGEPOINT_RUNS = ("field-changepoints.json", "field-changepoints-3.json")


def render_changepoints_field() -> str:
    """benchmarks/field/changepoints.py's figures: planted steps found at their commit, false change points."""
    return "\n\n".join(_changepoints_table(_load(name)) for name in CHANGEPOINT_RUNS if (DATA / name).exists())


def _changepoints_table(data: dict) -> str:
    cells: dict[tuple[str, float], dict[str, int]] = {}
    for result in data["results"]:
        for score in result["scores"]:
            cell = cells.setdefault((result["scenario"], score["min_change"]), {"trials": 0, "found": 0, "false": 0})
            cell["trials"] += 1
            cell["found"] += score["found"]
            cell["false"] += score["false"]
    per_commit = data.get("runs_per_commit", 1)
    runs = data["commits"] * per_commit
    rows = [
        [
            scenario,
            f"{effect:.1%}",
            f"{cell['found']} of {cell['trials']}" if not scenario.startswith("no ") else "-",
            cell["false"],
            f"{100 * cell['false'] / (cell['trials'] * runs):.2f}",
        ]
        for (scenario, effect), cell in cells.items()
    ]
    cpu = data["cpu"] or {}
    meters = sorted({f"{r['meter']} ({r['source']} joules)" for r in data["results"]})
    sessions = "one pytest session" if per_commit == 1 else f"{per_commit} pytest sessions (one per pass)"
    head = (
        f"**{per_commit} run(s) per commit.** Measured on {cpu.get('model_name', '?')} "
        f"({cpu.get('architecture', '?')}, {data['cores']} vCPUs), Python {data['python']}, "
        f"commit {data['commit']}, {data['date'][:10]}; meter {', '.join(meters)}; {data['commits']} commits per "
        f"trial, {sessions} per commit pinned to one CPU, a ~20 ms loop, alpha {data['alpha']:g}, "
        f"{data['minutes']:.0f} min in all; session noise {_noise_range(data['results'])} of the mean."
    )
    headers = ["scenario", "min change", "found at the planted commit", "false change points", "per 100 runs"]
    return head + "\n\n" + _table(headers, rows)


def _noise_range(results: list[dict]) -> str:
    """The lowest and highest noise of the trials' series, as the detector estimates it, relative to the mean."""
    import numpy as np

    from energy_bench.history.changepoints import noise

    found = [noise(np.array(r["joules"])) / np.mean(r["joules"]) for r in results if len(r["joules"]) > 2]
    return f"{min(found):.0%}-{max(found):.0%}" if found else "unknown"


FIELD = {
    "field-loop.json": "(a) last:5, ~17 ms loop",
    "field-ab.json": "(b) energy-bench ab",
    "field-study.json": "(c) study subset",
}


def render_field() -> str:
    # The field run records no meter of its own; its sessions used the default meter, as the study runs taken on the
    # same machine in the same measurement chain did.
    energy = _load(STUDY_RUNS[0])["machine_info"].get("energy", {})
    meter = f"default meter, here `{energy.get('meter', '?')}`: {energy.get('source', '?')} joules"
    blocks = []
    for name, title in FIELD.items():
        run = _load(name)
        bench = run["benchmarks"][0]
        extra = bench["extra_info"]
        rows = extra.get("rows") or extra.get("sessions") or []
        table = _table(list(rows[0]), [list(r.values()) for r in rows]) if rows else "(no rows)"
        blocks.append(
            f"**{title}**, thresholds `{extra.get('thresholds')}`, {extra.get('seconds', 0) / 60:.0f} min "
            f"({_machine(run)}; gated sessions: {meter}):\n\n{table}"
        )
    return "\n\n".join(blocks)


def render_omp() -> str:
    data = _load("omp-wait-policy.json")
    head = f"{data['cpu']}, {data['cores']} logical cores, {data['steps']} measured steps per configuration:"
    return head + "\n\n" + _table(data["headers"], data["rows"])


def render_gate_thresholds() -> str:
    """The recommended thresholds per meter: the table ``energy-bench doctor`` prints its row from."""
    from energy_bench.runs.thresholds import RECOMMENDED

    rows = [
        [", ".join(f"`{m}`" for m in r.meters) + f" ({r.label})",
         f"`{r.thresholds}`" if r.thresholds else "not measured by this project yet",
         r.baseline_runs, r.ab_repeat, r.basis]
        for r in RECOMMENDED
    ]  # fmt: skip
    return _table(["meter", "joules threshold", "baseline runs", "A/B `--repeat`", "from"], rows)


def render_models() -> str:
    from energy_bench.study.zoo import MODELS

    rows = [[f"`{m.name}`", f"{m.paper_params:g}", m.min_size] for m in MODELS.values()]
    return _table(["model", "parameters (millions, ImageNet head)", "smallest input (px)"], rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "options": render_options,
    "study-models": render_models,
    "gate-thresholds": render_gate_thresholds,
    "results-machine": render_study_machine,
    "results-times": render_study_times,
    "results-study": render_study_ranking,
    "results-summary": render_study_summary,
    "results-inference": render_inference,
    "results-overhead": render_overhead,
    "results-field": render_field,
    "results-omp": render_omp,
    "estimate-coefficients": render_estimate_coefficients,
    "carbon-regions": render_carbon_regions,
    "results-codecarbon": render_estimate_vs_codecarbon,
    "results-store-scale": render_store_scale,
    "results-changepoints": render_changepoints_field,
}
# the same study tables for each other CPU kind: results-machine-zen4, results-study-zen4, ...
for _kind, _runs in STUDY_KINDS.items():
    if _kind:
        for _name, _render in (
            ("machine", render_study_machine),
            ("study", render_study_ranking),
            ("inference", render_inference),
            ("times", render_study_times),
        ):
            GENERATORS[f"results-{_name}-{_kind}"] = functools.partial(_render, _runs)


def render_page(markdown: str, where: str) -> str:
    """``markdown`` with every generated block holding what its generator renders now."""

    def replace(match: re.Match) -> str:
        name = match.group("name") or match.group("bare")
        if name not in GENERATORS:
            raise KeyError(f"{where}: no generator for '<!-- generated: {name} -->'")
        return f"<!-- generated: {name} -->\n{GENERATORS[name]().strip()}\n<!-- end generated: {name} -->"

    return BLOCK.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return render_page(markdown, page.file.src_path)


def main(argv: list[str]) -> int:
    """Rewrite the generated blocks of every page; with ``--check``, list the stale pages and exit 1 instead."""
    stale = []
    for path in sorted(DOCS.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        fresh = render_page(text, str(path.relative_to(DOCS)))
        if fresh != text:
            stale.append(path.relative_to(DOCS))
            if "--check" not in argv:
                path.write_text(fresh, encoding="utf-8")
    verb = "stale" if "--check" in argv else "rewritten"
    for path in stale:
        print(f"{verb}: docs/{path}")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
