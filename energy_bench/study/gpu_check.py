"""``scripts/gpu-check``: what this project has not yet measured on a GPU, measured in one short run.

Four phases, each skipped with its reason where what it needs is missing (torch, CUDA, NVML):

1. ``counter-vs-polling``: NVML's energy counter and the power-polling path (:class:`~energy_bench.meters.nvml.
   NvmlMeter` with ``polling=True``) over the same windows: 5 s idle before this process opens a CUDA context, a
   sleep with the context open, and busy fp32 matmuls on ``cuda:0``; their difference in % of the counter's joules.
2. ``idle-power``: watts of the idle window, from the counter and from polling.
3. ``study``: one study model (default resnet18) fine-tuned on ``cuda:0`` as the baseline and as stego restricted to
   float16, then to bfloat16, through the study's own :class:`~energy_bench.study.suite.Study`; joules, seconds and
   held-out accuracy per variant, and the format stego chose (it falls back to float32 when a format fails its
   accuracy check: the report then says so).
4. ``gate``: a tiny CUDA benchmark run twice by pytest with ``--benchmark-autosave``, then ``energy-bench compare
   --fail`` on the two unchanged sessions: exit 0 is the right answer, exit 1 a false alarm.

It writes ``gpu-check.json`` and ``gpu-check.md`` to ``--out``. On a machine without a GPU it still runs, and the
report says that every GPU phase was skipped and why. The whole run takes a few minutes on one GPU; the longest
phase is the study's (pretraining the ``self`` weights once, then stego's capacity search twice).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from energy_bench.meters.base import Meter, MeterUnavailable

OK, SKIPPED, FAILED = "ok", "skipped", "failed"
IDLE_S = 5.0
SLEEP_S = 3.0
MATMUL_S = 10.0
MATMUL_SIZE = 4096
#: measured study windows at least this long: ten or more updates of NVML's 100 ms counter
STUDY_WINDOW_S = 5.0
#: cap on the measured rounds per variant, so a slow GPU still finishes within minutes
MAX_STUDY_ROUNDS = 500
DEFAULT_MODEL = "resnet18"
#: gate thresholds for the two unchanged sessions (no hardware-counter row has measured thresholds yet)
GATE_FAIL = "joules:10%,accuracy:1pt"
SESSION_TIMEOUT_S = 180


# ---------------------------------------------------------------------------- what this machine has


@dataclass(frozen=True)
class Environment:
    """Why each requirement is missing (None: present), and what was found."""

    torch_problem: str | None
    cuda_problem: str | None
    nvml_problem: str | None
    facts: dict[str, Any] = field(default_factory=dict)


def detect() -> Environment:
    facts: dict[str, Any] = {"python": platform.python_version(), "host": platform.node()}
    torch_problem, cuda_problem = _torch_and_cuda(facts)
    nvml_problem = _nvml(facts)
    return Environment(torch_problem, cuda_problem, nvml_problem, facts)


def _torch_and_cuda(facts: dict[str, Any]) -> tuple[str | None, str | None]:
    try:
        import torch
    except ImportError as exc:
        problem = f"torch is not installed ({exc}; pip install -e '.[study]')"
        return problem, problem
    facts["torch"] = torch.__version__
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)"
    # device_count, not get_device_name: the idle window must come before this process opens a CUDA context
    facts["cuda_devices"] = torch.cuda.device_count()
    facts["cuda_runtime"] = torch.version.cuda
    return None, None


def _nvml(facts: dict[str, Any]) -> str | None:
    from energy_bench.meters.nvml import NvmlMeter

    try:
        meter = NvmlMeter(gpus=[0])
    except MeterUnavailable as exc:
        return f"NVML unavailable: {exc}"
    try:
        facts["nvml"] = meter.info()
    finally:
        meter.close()
    return None


# ---------------------------------------------------------------------------- results


@dataclass
class Phase:
    name: str
    title: str
    status: str = OK
    reason: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def skipped(name: str, title: str, reason: str) -> Phase:
    return Phase(name, title, SKIPPED, reason)


def first_problem(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


# ---------------------------------------------------------------------------- 1 + 2: counter against polling


def difference_pct(counter_j: float, polled_j: float) -> float | None:
    """Polling's joules against the counter's, in % of the counter's (None: the counter saw no energy)."""
    if not counter_j > 0:  # also NaN
        return None
    return 100.0 * (polled_j - counter_j) / counter_j


def agreement_pct(counter_j: float, polled_j: float) -> float | None:
    """100 % minus the size of the difference: 100 when both paths give the same joules."""
    difference = difference_pct(counter_j, polled_j)
    return None if difference is None else 100.0 - abs(difference)


Workload = tuple[str, Callable[[], None]]


def compare_paths(counter: Meter, polling: Meter, workloads: Sequence[Workload]) -> list[dict[str, Any]]:
    """Each workload inside one window of both meters (polling's nested in the counter's, microseconds apart).

    A workload synchronizes the device itself before it returns, so both windows hold all of its work.
    """
    rows = []
    for name, work in workloads:
        outer = counter.begin()
        inner = polling.begin()
        work()
        polled = polling.end(inner)
        measured = counter.end(outer)
        for domain, counter_j in measured.joules.items():
            polled_j = polled.joules[domain]
            rows.append(
                {
                    "window": name,
                    "domain": domain,
                    "seconds": measured.seconds,
                    "counter_j": counter_j,
                    "polled_j": polled_j,
                    "counter_w": counter_j / measured.seconds if measured.seconds > 0 else None,
                    "polled_w": polled_j / polled.seconds if polled.seconds > 0 else None,
                    "difference_pct": difference_pct(counter_j, polled_j),
                    "agreement_pct": agreement_pct(counter_j, polled_j),
                }
            )
    return rows


def idle_power(rows: Sequence[dict[str, Any]], window: str = "idle") -> list[dict[str, Any]]:
    """The idle window's watts per GPU, from both paths."""
    return [
        {"domain": r["domain"], "counter_w": r["counter_w"], "polled_w": r["polled_w"], "seconds": r["seconds"]}
        for r in rows
        if r["window"] == window
    ]


def gpu_workloads(cuda: bool) -> list[Workload]:
    """Idle before this process opens a CUDA context, then (with CUDA) a sleep with it open and busy matmuls."""
    loads: list[Workload] = [("idle", lambda: time.sleep(IDLE_S))]
    if cuda:
        loads += [("sleep", _cuda_sleep), ("matmul", _matmul)]
    return loads


def _cuda_sleep() -> None:
    import torch

    torch.cuda.synchronize(0)
    time.sleep(SLEEP_S)


def _matmul() -> None:
    import torch

    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device="cuda:0")
    deadline = time.monotonic() + MATMUL_S
    while time.monotonic() < deadline:
        for _ in range(10):  # queue a few before checking the clock: the GPU never waits for Python
            a = torch.tanh(a @ a)
        torch.cuda.synchronize(0)


def run_counter_vs_polling(
    env: Environment, workloads: Sequence[Workload] | None = None, clock: Callable[[], float] = time.monotonic
) -> tuple[Phase, Phase]:
    """Phases 1 and 2: the second reads the first's idle window. ``clock`` times both meters' windows."""
    title1, title2 = "NVML energy counter vs power polling", "Idle GPU power"
    problem = env.nvml_problem
    if problem:
        return skipped("counter-vs-polling", title1, problem), skipped("idle-power", title2, problem)
    from energy_bench.meters.nvml import NvmlMeter

    counter, polling = NvmlMeter(gpus=[0], clock=clock), NvmlMeter(gpus=[0], polling=True, clock=clock)
    try:
        if counter.name != "nvml-counter":
            reason = "this GPU has no NVML energy counter: " + str(counter.info()["gpus"][0].get("counter_unavailable"))
            return skipped("counter-vs-polling", title1, reason), skipped("idle-power", title2, reason)
        loads = gpu_workloads(env.cuda_problem is None) if workloads is None else workloads
        rows = compare_paths(counter, polling, loads)
        first = Phase("counter-vs-polling", title1, results=rows)
        first.notes.append(f"polling every {polling.poll_period_s * 1000:.0f} ms: {polling.polling_stats()}")
        if env.cuda_problem and workloads is None:
            first.notes.append(f"sleep and matmul windows skipped: {env.cuda_problem}")
    finally:
        polling.close()
        counter.close()
    return first, Phase("idle-power", title2, results=idle_power(rows))


# ---------------------------------------------------------------------------- 3: the study on CUDA


@dataclass(frozen=True)
class Variant:
    label: str
    spec: str
    formats: tuple[str, ...] | None  # torch dtype names stego may choose; None: the device's own


VARIANTS = (
    Variant("baseline", "baseline", None),
    Variant("stego fp16", "stego", ("float16",)),
    Variant("stego bf16", "stego", ("bfloat16",)),
)


def run_study(env: Environment, model: str = DEFAULT_MODEL) -> Phase:
    title = f"Study model {model} on CUDA: baseline and stego (fp16, bf16)"
    problem = first_problem(env.torch_problem, env.cuda_problem, env.nvml_problem)
    if problem:
        return skipped("study", title, problem)
    import torch

    from energy_bench.meters.nvml import NvmlMeter

    device = torch.device("cuda:0")
    meter = NvmlMeter(gpus=[0])
    phase = Phase("study", title)
    try:
        rounds = None
        for variant in VARIANTS:
            if variant.formats and "bfloat16" in variant.formats and not torch.cuda.is_bf16_supported():
                phase.notes.append(f"{variant.label}: skipped, this GPU has no bfloat16")
                continue
            row, rounds = train_variant(variant, model, device, meter, rounds)
            phase.results.append(row)
    finally:
        meter.close()
    phase.notes.append(
        f"each variant trained {rounds} rounds of the smoke profile (enough for a window of about "
        f"{STUDY_WINDOW_S:.0f} s on the baseline), after one unmeasured warm-up round; accuracy on the held-out split"
    )
    return phase


def study_for(model: str, device: Any, formats: tuple[str, ...] | None) -> Any:
    """The study's session object for one model, with stego limited to ``formats`` where given."""
    import torch

    from energy_bench.compress import parse_specs

    from .data import check_source
    from .profiles import get_profile
    from .suite import Study, StudyConfig

    config = StudyConfig(get_profile("smoke"), (model,), parse_specs("baseline,stego"), check_source("digits"), None)
    study = Study(config, device)
    if formats is not None:
        # Study.formats is a cached property: an instance value stands in for the device's native formats
        study.formats = tuple(getattr(torch, name) for name in formats)
    return study


def train_variant(variant: Variant, model: str, device: Any, meter: Meter, rounds: int | None) -> tuple[dict, int]:
    """Compress, warm up, then train ``rounds`` measured rounds (None: as many as fill STUDY_WINDOW_S)."""
    from energy_bench.compress import parse_spec

    study = study_for(model, device, variant.formats)
    compressed = study.compressed(model, parse_spec(variant.spec))
    net = study.fresh_copy(compressed)
    dtype = study.train_dtype(compressed)
    trainer = study.trainer(net, model, dtype=dtype)
    trainer.warm_up_round()  # kernels chosen and memory allocated before anything is timed
    if rounds is None:
        rounds = rounds_to_fill(trainer, device, study.profile.rounds)
    mark = meter.begin()
    for _ in range(rounds):
        trainer.train_one_round()
    synchronize(device)
    reading = meter.end(mark)
    info = compressed.info
    row = {
        "variant": variant.label,
        "dtype": info["dtype"],
        "train_dtype": info["train_dtype"],
        "rounds": rounds,
        "joules": reading.total,
        "seconds": reading.seconds,
        "accuracy": study.evaluate(net, model, dtype=dtype),
        "accuracy_before": study.accuracy_before(model, parse_spec(variant.spec), compressed),
        "compressor_details": info["compressor_details"],
    }
    if variant.formats and info["dtype"] not in variant.formats:
        row["note"] = f"stego did not keep {variant.formats[0]}: it failed the accuracy check, {info['dtype']} used"
    return row, rounds


def synchronize(device: Any) -> None:
    """Wait for the device's queued work (a no-op on the CPU, where a dry run of this phase can go)."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rounds_to_fill(trainer: Any, device: Any, at_least: int) -> int:
    """Rounds that make a window of about STUDY_WINDOW_S, timed on one more warm-up round (which leaves no trace)."""
    started = time.perf_counter()
    trainer.warm_up_round()
    synchronize(device)
    one = max(time.perf_counter() - started, 1e-3)
    return min(MAX_STUDY_ROUNDS, max(at_least, math.ceil(STUDY_WINDOW_S / one)))


# ---------------------------------------------------------------------------- 4: the gate on unchanged sessions

TINY_BENCHMARK = """
import torch

A = torch.randn(2048, 2048, device="cuda:0")


def work():
    b = A
    for _ in range(20):
        b = torch.tanh(b @ A)
    torch.cuda.synchronize(0)


def test_matmul(energy):
    energy(work)
"""


def run_gate(env: Environment, workdir: Path, runner: Callable[..., Any] = subprocess.run) -> Phase:
    title = "The gate on two unchanged sessions"
    problem = first_problem(env.torch_problem, env.cuda_problem, env.nvml_problem)
    if problem:
        return skipped("gate", title, problem)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "test_tiny_gpu.py").write_text(TINY_BENCHMARK)
    storage = f"file://{workdir / 'storage'}"
    session = ["-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args(), "--energy-meter=nvml"]
    session.append("--benchmark-autosave")
    phase = Phase("gate", title)
    for number in (1, 2):
        done = _run(runner, [*session, f"--benchmark-storage={storage}", "test_tiny_gpu.py"], workdir)
        phase.results.append({"step": f"session {number}", "exit": done.returncode})
        if done.returncode != 0:
            return _failed(phase, f"session {number} exited {done.returncode}", done)
    done = _run(runner, ["-m", "energy_bench.cli", "compare", "--storage", storage, "--fail", GATE_FAIL], workdir)
    phase.results.append({"step": f"energy-bench compare --fail {GATE_FAIL}", "exit": done.returncode})
    phase.notes.append(_tail(done, 15))
    if done.returncode not in (0, 1):
        return _failed(phase, f"energy-bench compare exited {done.returncode}", done)
    verdict = "passed (right: nothing changed)" if done.returncode == 0 else "failed: a false alarm"
    phase.results.append({"step": "verdict", "exit": verdict})
    return phase


def plugin_args() -> list[str]:
    """``-p energy_bench.plugin`` when this checkout is not installed: pytest then has no entry point to load it by,
    and naming it where the entry point exists would register it twice."""
    from importlib.metadata import entry_points

    installed = any(ep.value.startswith("energy_bench") for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "energy_bench.plugin"]


def _run(runner: Callable[..., Any], args: list[str], cwd: Path) -> Any:
    """``python ARGS`` in ``cwd``, importing energy_bench from this checkout (the sessions run outside it)."""
    checkout = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (checkout, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    return runner(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False,
        timeout=SESSION_TIMEOUT_S,
    )  # fmt: skip


def _tail(done: Any, lines: int) -> str:
    return "\n".join(((done.stdout or "") + (done.stderr or "")).splitlines()[-lines:])


def _failed(phase: Phase, reason: str, done: Any) -> Phase:
    phase.status, phase.reason = FAILED, reason
    phase.notes.append(_tail(done, 30))
    return phase


# ---------------------------------------------------------------------------- running and reporting


def guarded(name: str, title: str, run: Callable[[], Phase | tuple[Phase, ...]]) -> list[Phase]:
    """Run one phase; an error fails that phase only (the report says what), the others still run."""
    started = time.perf_counter()
    try:
        result = run()
    except Exception as exc:  # a GPU check must report what broke, not stop at the first error
        result = Phase(name, title, FAILED, f"{type(exc).__name__}: {exc}")
    phases = list(result) if isinstance(result, tuple) else [result]
    for phase in phases:
        phase.seconds = round(time.perf_counter() - started, 3)
    return phases


def run_check(env: Environment, out: Path, model: str = DEFAULT_MODEL) -> list[Phase]:
    phases = guarded("counter-vs-polling", "NVML energy counter vs power polling", lambda: run_counter_vs_polling(env))
    phases += guarded("study", "Study model on CUDA", lambda: run_study(env, model))
    with tempfile.TemporaryDirectory(prefix="gate-", dir=out) as workdir:
        phases += guarded("gate", "The gate on two unchanged sessions", lambda: run_gate(env, Path(workdir)))
    return phases


def report_data(env: Environment, phases: Sequence[Phase], started: str) -> dict[str, Any]:
    return {
        "tool": "scripts/gpu-check",
        "started": started,
        "environment": {
            "torch_problem": env.torch_problem,
            "cuda_problem": env.cuda_problem,
            "nvml_problem": env.nvml_problem,
            **env.facts,
        },
        "all_gpu_phases_skipped": all(p.status == SKIPPED for p in phases),
        "phases": [asdict(p) for p in phases],
    }


def render_markdown(data: dict[str, Any]) -> str:
    env = data["environment"]
    lines = ["# GPU check", "", f"Started {data['started']} on {env.get('host', '?')}."]
    gpus = (env.get("nvml") or {}).get("gpus") or [{}]
    device = gpus[0].get("name") or "no GPU that NVML shows"
    lines += [f"GPU 0: {device}; torch {env.get('torch', 'not installed')}.", ""]
    if data["all_gpu_phases_skipped"]:
        lines += ["**Every GPU phase was skipped** on this machine; the reasons are below.", ""]
    for phase in data["phases"]:
        lines += _phase_markdown(phase)
    return "\n".join(lines).rstrip() + "\n"


def _phase_markdown(phase: dict[str, Any]) -> list[str]:
    lines = [f"## {phase['title']}", "", f"Status: **{phase['status']}** ({phase['seconds']:.1f} s)"]
    if phase["reason"]:
        lines[-1] += f": {phase['reason']}"
    lines.append("")
    if phase["results"]:
        lines += [*_table(phase["results"]), ""]
    for note in phase["notes"]:
        lines += ["```", note, "```", ""] if "\n" in note else [f"- {note}", ""]
    return lines


def _table(rows: Sequence[dict[str, Any]]) -> list[str]:
    columns = list(dict.fromkeys(key for row in rows for key in row if not isinstance(row[key], dict)))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_report(data: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "gpu-check.json", out / "gpu-check.md"
    json_path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    md_path.write_text(render_markdown(data))
    return json_path, md_path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/gpu-check",
        description="NVML counter vs polling, idle power, a study model under fp16/bf16, and the gate, on one GPU",
    )
    parser.add_argument("--out", type=Path, default=Path("gpu-check"), help="folder for gpu-check.json and .md")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"the study model to train (default {DEFAULT_MODEL})")
    args = parser.parse_args(argv)
    from .zoo import get_spec

    try:
        get_spec(args.model)
    except ValueError as exc:
        parser.error(str(exc))  # exit 2
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: exists and is not a folder")
    return args


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Exit 0 when no phase failed (skipped ones included), 1 when one did."""
    args = parse_args(argv)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    env = detect() if env is None else env
    args.out.mkdir(parents=True, exist_ok=True)
    phases = run_check(env, args.out, args.model)
    json_path, md_path = write_report(report_data(env, phases, started), args.out)
    for phase in phases:
        print(f"{phase.name}: {phase.status}" + (f" ({phase.reason})" if phase.reason else ""))
    print(f"wrote {json_path} and {md_path}")
    return 1 if any(p.status == FAILED for p in phases) else 0
