"""CPU time the estimate meter reads for one small torch training step, alone and beside a busy process,
with OpenMP's default wait policy and with OMP_WAIT_POLICY=PASSIVE.

Run on an otherwise idle machine: ``python benchmarks/omp_wait_policy.py [--steps 40] [--warmup 5]``. Each
configuration runs in a fresh interpreter, because the OpenMP runtime reads OMP_WAIT_POLICY once, when torch loads
it. The "busy" configurations start one process spinning on a core for the whole measurement, as another job on a
shared machine would. Prints one table row per configuration: CPU seconds per step as the estimate meter counts
them (mean and coefficient of variation over the steps) and wall seconds per step.

Not a test: it takes a minute or two and its figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGURATIONS = [
    # (label, OMP_WAIT_POLICY or None for the runtime's default, busy neighbour)
    ("default policy, alone", None, False),
    ("default policy, beside a busy process", None, True),
    ("PASSIVE, alone", "PASSIVE", False),
    ("PASSIVE, beside a busy process", "PASSIVE", True),
]
BUSY_LOOP = "while True:\n    pass\n"


def worker(steps: int, warmup: int) -> None:
    """In a fresh interpreter: time ``steps`` training steps of a small conv net; print JSON per-step figures."""
    import torch
    from torch import nn

    from energy_bench.meters.estimate import EstimateMeter

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 16 * 16, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    images, labels = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))

    def step() -> None:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    meter = EstimateMeter(cpu_watts=1.0)  # 1 W per busy core: joules read as CPU seconds
    cpu, wall = [], []
    for _ in range(steps):
        mark = meter.begin()
        step()
        reading = meter.end(mark)
        cpu.append(reading.joules["cpu"])
        wall.append(reading.seconds)
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "threads": torch.get_num_threads()}))


def run_configuration(policy: str | None, busy: bool, steps: int, warmup: int) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(here), env.get("PYTHONPATH")]))
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy else None
    try:
        if neighbour:
            time.sleep(0.5)  # let it settle onto a core
        command = [sys.executable, __file__, "--worker", "--steps", str(steps), "--warmup", str(warmup)]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    finally:
        if neighbour:
            neighbour.kill()
            neighbour.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(label: str, figures: dict) -> list:
    cpu, wall = figures["cpu_s"], figures["wall_s"]
    mean = statistics.fmean(cpu)
    cv = statistics.stdev(cpu) / mean * 100 if len(cpu) > 1 and mean > 0 else 0.0
    return [label, figures["threads"], f"{mean:.4f}", f"{cv:.1f}", f"{statistics.fmean(wall):.4f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="measured training steps per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured steps first")
    parser.add_argument("--json", metavar="PATH", help="also write the table as JSON (rows, headers, the CPU model)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.steps, args.warmup)
        return
    if args.json and not os.access(os.path.dirname(os.path.abspath(args.json)), os.W_OK):
        parser.error(f"--json {args.json}: its folder does not exist or is not writable")  # before minutes of work
    from tabulate import tabulate

    rows = [
        summary(label, run_configuration(policy, busy, args.steps, args.warmup))
        for label, policy, busy in CONFIGURATIONS
    ]
    headers = ["configuration", "threads", "CPU s/step (estimate)", "CV %", "wall s/step"]
    print(tabulate(rows, headers=headers, disable_numparse=True))
    if args.json:
        from energy_bench.meters.estimate import cpu_model

        cpu = cpu_model() or "unknown CPU"
        figures = {"headers": headers, "rows": rows, "cpu": cpu, "cores": os.cpu_count(), "steps": args.steps}
        try:
            with open(args.json, "w", encoding="utf-8") as out:
                json.dump(figures, out, indent=1)
        except OSError as exc:  # the table above is printed: say what failed, without a traceback
            sys.exit(f"omp_wait_policy.py: could not write {args.json}: {exc.strerror or exc}")


if __name__ == "__main__":
    main()
