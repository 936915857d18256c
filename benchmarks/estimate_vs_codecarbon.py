"""The same work under energy-bench's estimate, CodeCarbon's offline tracker and, where readable, RAPL.

Run on an otherwise idle machine::

    python benchmarks/estimate_vs_codecarbon.py [--repeats 3] [--steps 30] [--threads 2] [--json FILE]

Two workloads: resnet18 training steps with torch (``--threads`` intra-op threads; needs torch and torchvision) and a
pure-Python loop (one thread). Each (workload, tool) pair runs ``--repeats`` times, each in a fresh interpreter, the
tools taking turns, so that no tool's background thread is counted by another. In each run the estimate meter and
RAPL (when ``/sys/class/powercap`` is readable) read the same window; CodeCarbon (``pip install codecarbon``, an
optional dependency of this benchmark only, skipped with a reason when missing) runs alone, offline, with
``--country`` for its carbon figure. Prints the CPU and, per workload and tool, joules (mean and range over the
repeats), CPU seconds, wall seconds and what the tool's figure is based on.

Not a test: it takes a few minutes and its figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

WORKLOADS = ("resnet18-train", "python-loop")
TOOLS = ("energy-bench", "codecarbon")


def build_workload(name: str, args: argparse.Namespace):
    """A function running one measured unit of ``name`` (after its warm-up), and a description of it."""
    if name == "python-loop":

        def loop() -> None:
            total = 0
            for i in range(args.loop_iterations):
                total += i * i

        return loop, f"{args.loop_iterations:,} iterations of a pure-Python loop, one thread"
    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    size = args.image_size
    images, labels = torch.randn(args.batch, 3, size, size), torch.randint(0, 10, (args.batch,))

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    step()  # warm-up: allocations and kernel selection outside the window

    def train() -> None:
        for _ in range(args.steps):
            step()

    return train, f"{args.steps} resnet18 training steps, batch {args.batch} at {size}x{size}, {args.threads} threads"


def cpu_seconds() -> float:
    from energy_bench.meters.estimate import process_tree_cpu_seconds

    return process_tree_cpu_seconds()


def run_energy_bench(work) -> dict:
    """The estimate meter and, where readable, RAPL over one window."""
    from energy_bench.meters import EstimateMeter, MeterUnavailable, RaplMeter

    estimate = EstimateMeter()
    try:
        rapl = RaplMeter()
    except MeterUnavailable as exc:
        rapl, rapl_reason = None, str(exc)
    marks = (estimate.begin(), rapl.begin() if rapl else None)
    started, cpu = time.monotonic(), cpu_seconds()
    work()
    used, wall = cpu_seconds() - cpu, time.monotonic() - started
    reading = estimate.end(marks[0])
    out = {"joules": reading.total, "cpu_seconds": used, "wall_seconds": wall, "basis": estimate.model.label()}
    out["lower_joules"] = used * estimate.model.lower_watts if estimate.model.lower_watts is not None else None
    if rapl is not None:
        measured = rapl.end(marks[1])
        out["rapl_joules"], out["rapl_domains"] = measured.total, measured.joules
        rapl.close()
    else:
        out["rapl_reason"] = rapl_reason
    return out


def run_codecarbon(work, country: str) -> dict:
    from codecarbon import OfflineEmissionsTracker

    tracker = OfflineEmissionsTracker(
        country_iso_code=country, save_to_file=False, log_level="error", measure_power_secs=1
    )
    started, cpu = time.monotonic(), cpu_seconds()
    tracker.start()
    work()
    tracker.stop()
    used, wall = cpu_seconds() - cpu, time.monotonic() - started
    data = tracker.final_emissions_data
    return {
        "joules": data.cpu_energy * 3.6e6,
        "ram_joules": data.ram_energy * 3.6e6,
        "cpu_seconds": used,
        "wall_seconds": wall,
        "basis": f"CodeCarbon {data.codecarbon_version}: {data.cpu_model}, CPU power {data.cpu_power:.3g} W "
        f"({data.tracking_mode} mode), {data.emissions_rate * 3.6e3:.3g} kg/h at {country}",
        "grams_co2e": data.emissions * 1e3,
    }


def worker(args: argparse.Namespace) -> None:
    """In a fresh interpreter: one measured run of one workload under one tool; prints JSON."""
    work, described = build_workload(args.workload, args)
    result = run_codecarbon(work, args.country) if args.tool == "codecarbon" else run_energy_bench(work)
    print(json.dumps(result | {"workload": described}))


def cpu_line() -> str:
    from energy_bench.meters.estimate import cpu_model as model_name
    from energy_bench.meters.estimate import detect_model

    model = detect_model()
    return f"CPU: {model_name()} ({model.evidence}; {os.cpu_count()} CPUs); energy-bench model: {model.label()}"


def available(tool: str, workload: str) -> str | None:
    """Why a tool or workload cannot run here (None: it can)."""
    needed = ["torch", "torchvision"] if workload == "resnet18-train" else []
    needed += ["codecarbon"] if tool == "codecarbon" else []
    for module in needed:
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed"
    return None


def summary(runs: list[dict], key: str) -> str:
    values = [r[key] for r in runs if r.get(key) is not None]
    if not values:
        return ""
    return f"{statistics.fmean(values):.4g} ({min(values):.4g}-{max(values):.4g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loop-iterations", type=int, default=30_000_000)
    parser.add_argument("--country", default="FRA", help="CodeCarbon's offline country (ISO alpha-3)")
    parser.add_argument("--json", help="also write every run's figures to this file")
    parser.add_argument("--workload", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--tool", choices=TOOLS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tool:
        worker(args)
        return
    print(cpu_line())
    results: dict[str, dict[str, list[dict]]] = {}
    passed = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("json", "workload", "tool")]
    for workload in WORKLOADS:
        for tool in TOOLS:
            reason = available(tool, workload)
            if reason:
                print(f"{workload} / {tool}: skipped ({reason})")
                continue
            results.setdefault(workload, {})[tool] = []
        for _ in range(args.repeats):
            for tool in results.get(workload, {}):  # the tools take turns
                command = [sys.executable, __file__, *passed, "--workload", workload, "--tool", tool]
                env = os.environ | {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
                out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
                results[workload][tool].append(json.loads(out.strip().splitlines()[-1]))
    for workload, tools in results.items():
        print(f"\n{workload}: {next(iter(tools.values()))[0]['workload']}, {args.repeats} runs each")
        for tool, runs in tools.items():
            print(f"  {tool}: {summary(runs, 'joules')} J CPU, {summary(runs, 'cpu_seconds')} CPU s, "
                  f"{summary(runs, 'wall_seconds')} s wall; {runs[0]['basis']}")  # fmt: skip
            if tool == "energy-bench":
                print(f"    lower bound {summary(runs, 'lower_joules')} J")
                rapl = summary(runs, "rapl_joules")
                print(f"    RAPL (measured, same window): {rapl} J" if rapl else f"    RAPL: {runs[0]['rapl_reason']}")
            else:
                print(f"    RAM {summary(runs, 'ram_joules')} J, {summary(runs, 'grams_co2e')} g CO2e")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"cpu": cpu_line(), "args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
