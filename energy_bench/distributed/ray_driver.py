"""``energy-bench run --ray``: the shards of one run as Ray tasks, merged into one saved run.

Each of the N shards is a Ray task asking for ``--gpus-per-shard`` GPUs and ``--cpus-per-shard`` CPUs; it runs
``python -m pytest <args> --energy-shard=k/N --benchmark-json=<tmp>`` in a subprocess, in the repository directory
(the driver's directory on a local Ray; the uploaded ``working_dir`` of the runtime environment on a cluster), and
returns the JSON text with where it ran. Ray pins each task's GPUs through ``CUDA_VISIBLE_DEVICES``; the shard
measures exactly those (``--energy-gpus=0,...,G-1``, CUDA indices under that variable), and uses ``C`` threads
(``OMP_NUM_THREADS``). The driver merges the shards (:mod:`energy_bench.runs.merge`) and saves one run.

Node-wide counters (RAPL) cannot tell apart shards running at once on one node, so the driver refuses before
starting when the meter would be node-wide and shards may share a node; what it only learns afterwards (where each
shard ran, and when) is flagged in the merged run's notes.

Ray is imported only when a run starts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from energy_bench.errors import EnergyBenchError
from energy_bench.meters import DEFAULT_POWERCAP_ROOT, MeterUnavailable, RaplMeter

#: options the driver sets itself for every shard
DRIVER_OPTIONS = ("--energy-shard", "--benchmark-json", "--benchmark-save", "--benchmark-autosave")
#: files a cluster does not need from the working directory
UPLOAD_EXCLUDES = [".git", ".benchmarks", "__pycache__", "*.pyc", ".venv"]


class DriverError(EnergyBenchError):
    """A run the driver refuses to start (bad arguments, a node-wide meter on shared nodes); the message says why."""


@dataclass(frozen=True)
class Plan:
    shards: int
    gpus_per_shard: int
    cpus_per_shard: int
    pytest_args: tuple[str, ...]
    address: str | None = None  # None: start a local Ray
    runtime_env: dict[str, Any] | None = None

    @property
    def local(self) -> bool:
        return self.address is None


@dataclass
class ShardResult:
    """What one shard's task returns: its exit code, its JSON text (None: nothing saved) and where it ran."""

    shard: str
    returncode: int
    json: str | None
    where: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------- arguments


def option_value(args: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in pytest arguments (``--flag=V`` or ``--flag V``); the last one wins."""
    value = None
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
        elif arg == flag and i + 1 < len(args):
            value = args[i + 1]
    return value


def check_args(plan: Plan) -> None:
    if plan.shards < 1:
        raise DriverError(f"--shards must be at least 1, got {plan.shards}")
    if plan.gpus_per_shard < 0 or plan.cpus_per_shard < 1:
        raise DriverError("--gpus-per-shard must be at least 0 and --cpus-per-shard at least 1")
    given = [flag for flag in DRIVER_OPTIONS if any(a == flag or a.startswith(flag + "=") for a in plan.pytest_args)]
    if given:
        raise DriverError(f"leave {', '.join(given)} out: the driver sets them for each shard and saves the merged run")
    if plan.gpus_per_shard and option_value(plan.pytest_args, "--energy-gpus") is not None:
        raise DriverError("leave --energy-gpus out: each shard measures the GPUs Ray gives it")


def node_wide_problem(plan: Plan, rapl_readable: Callable[[str], bool]) -> str | None:
    """Why the shards' meter would count other shards' work on a shared node, or None.

    On a local Ray every shard shares this node; ``rapl_readable(root)`` tells whether ``auto`` would pick RAPL here.
    """
    meter = (option_value(plan.pytest_args, "--energy-meter") or "auto").strip().lower()
    if meter == "nvml" and plan.gpus_per_shard == 0:
        return "--energy-meter=nvml with --gpus-per-shard 0: a shard given no GPU has none of its own to measure"
    if plan.shards < 2:
        return None
    root = option_value(plan.pytest_args, "--energy-powercap-root") or DEFAULT_POWERCAP_ROOT
    # On a cluster, whether shards may share a node depends on its nodes: see shared_nodes().
    if plan.local and (meter == "rapl" or (meter == "auto" and rapl_readable(root))):
        return (
            f"--energy-meter={meter} reads RAPL, whose counters cover the whole node: {plan.shards} shards "
            "sharing a node would each count the others' work (use --energy-meter=nvml with GPUs per shard, "
            "--energy-meter=estimate, or one shard per node)"
        )
    return None


def rapl_readable(root: str) -> bool:
    try:
        RaplMeter(root, guard_period_s=None).close()
    except MeterUnavailable:
        return False
    return True


def shard_command(plan: Plan, index: int, json_path: str) -> list[str]:
    args = [*plan.pytest_args, f"--energy-shard={index}/{plan.shards}", f"--benchmark-json={json_path}"]
    if plan.gpus_per_shard:
        args.append("--energy-gpus=" + ",".join(str(i) for i in range(plan.gpus_per_shard)))
    return [sys.executable, "-m", "pytest", *args]


def shard_environment(plan: Plan) -> dict[str, str]:
    """Variables set for each shard's pytest: its thread count, and no GPU for a shard given none."""
    env = {"OMP_NUM_THREADS": str(plan.cpus_per_shard)}
    if plan.gpus_per_shard == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


# ---------------------------------------------------------------------------- the task


def run_shard(plan: Plan, index: int, directory: str | None) -> ShardResult:
    """Ray task: run shard ``index``'s pytest, return its JSON text and where it ran. Output goes to Ray's log."""
    import ray

    started = time.time()
    env = {**os.environ, **shard_environment(plan)}
    with tempfile.TemporaryDirectory(prefix="energy-bench-shard-") as tmp:
        json_path = os.path.join(tmp, "shard.json")
        process = subprocess.run(shard_command(plan, index, json_path), cwd=directory, env=env, check=False)
        text = Path(json_path).read_text(encoding="utf-8") if os.path.exists(json_path) else None
    where = {
        "node_id": ray.get_runtime_context().get_node_id(),
        "ip": ray.util.get_node_ip_address(),
        "host": socket.gethostname(),
        "gpus": [str(g) for g in ray.get_gpu_ids()],
        "cuda_visible_devices": env.get("CUDA_VISIBLE_DEVICES"),
        "meter": saved_meter(text),
        "seconds": round(time.time() - started, 3),
    }
    return ShardResult(f"{index}/{plan.shards}", process.returncode, text, where)


def saved_meter(text: str | None) -> str | None:
    """The meter named in a saved run's ``machine_info.energy`` (None: no run, or no energy measured)."""
    try:
        meter = json.loads(text or "null")["machine_info"]["energy"]["meter"]
    except (ValueError, TypeError, KeyError):
        return None
    return meter if isinstance(meter, str) else None


# ---------------------------------------------------------------------------- the driver


#: what the stand-in amdsmi package raises: Ray takes an ImportError of amdsmi to mean "no AMD GPU here"
_NO_AMDSMI = 'raise ImportError("amdsmi cannot load libamd_smi.so on this machine (hidden from Ray by energy-bench)")\n'


def hide_broken_amdsmi(environ: Any = None) -> str | None:
    """Keep an amdsmi that cannot load its library from taking Ray down; returns a note when it did so.

    The zeus extra pulls in amdsmi, whose import raises KeyError (not ImportError) without ROCm's libamd_smi.so,
    and Ray imports it to count AMD GPUs, catching ImportError only. Here that import then raises ImportError: in
    this process through ``sys.modules``, in the local Ray's workers (started with ``environ``, default this
    process's environment) through a stand-in package put first on ``PYTHONPATH``.
    """
    import contextlib
    import importlib
    import io

    if "amdsmi" in sys.modules:
        return None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # amdsmi prints its failure before raising
            importlib.import_module("amdsmi")
        return None
    except ImportError:
        return None
    except Exception as exc:  # KeyError: 'libamd_smi.so' and the like
        problem = f"{type(exc).__name__}: {exc}"
    sys.modules["amdsmi"] = None  # type: ignore[assignment]  # a None entry makes `import amdsmi` an ImportError
    stub = Path(tempfile.mkdtemp(prefix="energy-bench-no-amdsmi-"))
    (stub / "amdsmi").mkdir()
    (stub / "amdsmi" / "__init__.py").write_text(_NO_AMDSMI)
    env = os.environ if environ is None else environ
    env["PYTHONPATH"] = os.pathsep.join(part for part in (str(stub), env.get("PYTHONPATH")) if part)
    return (
        f"amdsmi is installed but cannot be imported ({problem}; no ROCm here?): hidden from Ray so that it starts "
        "(pip uninstall amdsmi, or install ROCm, to silence this)"
    )


def import_ray() -> Any:
    note = hide_broken_amdsmi()
    if note:
        print(f"energy-bench: {note}", file=sys.stderr)
    try:
        import ray
    except ImportError as exc:
        raise DriverError(f"Ray is not installed ({exc}): pip install -e '.[ray]'") from None
    except Exception as exc:  # Ray probes every accelerator library at import; a broken one takes it down
        hint = ""
        if "amd_smi" in str(exc) or "amdsmi" in str(exc):
            hint = " (the amdsmi package is installed without AMD's libamd_smi.so; uninstall it or install ROCm)"
        raise DriverError(f"Ray cannot be imported: {type(exc).__name__}: {exc}{hint}") from None
    return ray


def working_directory(plan: Plan) -> tuple[str | None, dict[str, Any] | None]:
    """Where shards run and the runtime environment: here on a local Ray, the uploaded directory on a cluster."""
    runtime_env = plan.runtime_env
    if runtime_env is None and not plan.local:
        runtime_env = {"working_dir": os.getcwd(), "excludes": UPLOAD_EXCLUDES}
    return (None if runtime_env and "working_dir" in runtime_env else os.getcwd()), runtime_env


def shared_nodes(nodes: list[dict[str, Any]], plan: Plan) -> list[str]:
    """Addresses of live nodes with room for two shards or more at once."""
    room = []
    for node in nodes:
        resources = node.get("Resources") or {}
        if not node.get("Alive", True):
            continue
        by_cpu = resources.get("CPU", 0) // plan.cpus_per_shard
        by_gpu = resources.get("GPU", 0) // plan.gpus_per_shard if plan.gpus_per_shard else by_cpu
        if min(by_cpu, by_gpu) >= 2:
            room.append(str(node.get("NodeManagerAddress") or node.get("NodeID")))
    return room


def run_shards(plan: Plan, report: Callable[[str], None]) -> list[ShardResult]:
    """Start the shards on Ray (refusing node-wide meters on shared nodes first) and collect their results."""
    check_args(plan)
    problem = node_wide_problem(plan, rapl_readable)
    if problem:
        raise DriverError(f"refusing to start: {problem}")
    ray = import_ray()
    directory, runtime_env = working_directory(plan)
    try:
        ray.init(address=plan.address, runtime_env=runtime_env, include_dashboard=False)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... for an unusable address
        raise DriverError(f"cannot start or reach Ray ({plan.address or 'local'}): {exc}") from None
    try:
        meter = (option_value(plan.pytest_args, "--energy-meter") or "auto").strip().lower()
        roomy = shared_nodes(ray.nodes(), plan) if meter == "rapl" and plan.shards > 1 else []
        if roomy:
            raise DriverError(f"refusing to start: --energy-meter=rapl and nodes with room for two shards: {roomy}")
        task = ray.remote(run_shard).options(num_cpus=plan.cpus_per_shard, num_gpus=plan.gpus_per_shard, max_retries=0)
        pending = {task.remote(plan, k, directory): k for k in range(1, plan.shards + 1)}
        results = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            pending.pop(done[0])
            results.append(ray.get(done[0]))
            report(describe_result(results[-1]))
        return sorted(results, key=lambda r: int(r.shard.partition("/")[0]))
    finally:
        ray.shutdown()


def describe_result(result: ShardResult) -> str:
    where = result.where
    place = f"{where.get('host')} ({where.get('ip')}, node {str(where.get('node_id'))[:12]})"
    gpus = f", GPUs {','.join(where['gpus'])}" if where.get("gpus") else ""
    saved = f"saved its run (meter {where.get('meter')})" if result.json else "saved nothing"
    return f"shard {result.shard}: pytest exit {result.returncode} on {place}{gpus}, {saved}"


def keep_shards(results: Sequence[ShardResult], folder: Path) -> list[Path]:
    """Write each shard's JSON into ``folder`` (so a refused merge can be redone by hand)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for result in results:
        if result.json is not None:
            path = folder / f"shard-{result.shard.replace('/', '-of-')}.json"
            path.write_text(result.json, encoding="utf-8")
            paths.append(path)
    return paths


def exit_code(results: Sequence[ShardResult]) -> int:
    """The first shard's pytest exit code that is neither 0 nor 5 (a shard with nothing selected), else 0."""
    return next((r.returncode for r in results if r.returncode not in (0, 5)), 0)


def temporary_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="energy-bench-shards-"))


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
