"""``energy-bench doctor``: what this machine can measure, why a meter cannot work here, and what to do about it.

The facts come from :mod:`energy_bench.meters.probe` (each meter, the meter ``auto`` picks and why, torch) and
:mod:`energy_bench.meters.cpu_features` (the CPU, its narrow formats, OpenMP settings); the thresholds from
:mod:`energy_bench.runs.thresholds`, the table the gate's documentation renders. This module only adds the advice
and prints: plain text, or JSON with ``--json``. Exit 0 whatever the machine can measure.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from energy_bench.meters import cpu_features as cpu_mod
from energy_bench.meters import probe
from energy_bench.meters.gpus import VISIBLE_DEVICES_VAR
from energy_bench.meters.nvml import DEFAULT_POLL_PERIOD_S
from energy_bench.meters.rapl import DEFAULT_POWERCAP_ROOT
from energy_bench.plugin import openmp
from energy_bench.runs.text import printable
from energy_bench.runs.thresholds import RULE_OF_THUMB, format_gate_options, recommendation_for

EPILOG = """examples:
  energy-bench doctor            what can be measured here, and what to do
  energy-bench doctor --json     the same as JSON
"""
ZEUS_INSTALL = "pip install -e '.[zeus]'"
#: why a pooled baseline is not enough on a shared runner (docs/ab.md)
AB_ADVICE = (
    "energy-bench ab BASE HEAD -- BENCHMARKS measures both sides in one job; a saved baseline from another job "
    "carries that machine's speed drift"
)


def add_parser(commands) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="what this machine can measure, why not, and what to do",
        description="Check every meter on this machine (NVML, RAPL, Zeus, the CPU-time estimate), say which one "
        "--energy-meter=auto picks and why, the CPU's narrow number formats, OpenMP settings that bias the "
        "estimate, torch and CUDA, and the gate thresholds recommended for the meter picked.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_argument("--json", action="store_true", help="print JSON instead of text")
    doctor.add_argument(
        "--powercap-root", default=DEFAULT_POWERCAP_ROOT, metavar="DIR", help="as --energy-powercap-root"
    )
    doctor.add_argument("--cpu-watts", type=_positive, metavar="W", help="as --energy-cpu-watts")
    doctor.set_defaults(handler=run_doctor)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of watts, got {text!r}")
    return value


def run_doctor(args: argparse.Namespace) -> int:
    report = collect(args.powercap_root, args.cpu_watts)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_report(report))
    return 0


# ---------------------------------------------------------------------------- facts and advice


def collect(
    powercap_root: str = DEFAULT_POWERCAP_ROOT, cpu_watts: float | None = None, cpuinfo: str = cpu_mod.CPUINFO
) -> dict[str, Any]:
    """Every probe's facts with the advice that goes with them (what ``--json`` prints)."""
    settings: dict[str, Any] = {"powercap_root": powercap_root}
    if cpu_watts is not None:
        settings["cpu_watts"] = cpu_watts
    nvml, rapl = probe.probe_nvml(), probe.probe_rapl(powercap_root)
    meters = {
        "nvml": {**nvml, "advice": nvml_advice(nvml)},
        "rapl": {**rapl, "advice": rapl_advice(rapl)},
        "zeus": (zeus := probe.probe_zeus()) | {"advice": zeus_advice(zeus)},
        "estimate": probe.probe_estimate(cpu_watts),
    }
    cpu = cpu_mod.read_cpu(cpuinfo)
    omp = cpu_mod.openmp_settings()
    return {
        "auto": auto_section(probe.probe_auto(**settings)),
        "meters": meters,
        "cpu": None if cpu is None else {**cpu_mod.describe_cpu(cpu), "usable_cpus": cpu_mod.usable_cpus()},
        "openmp": {"environment": omp, "advice": openmp_advice(omp, cpu_mod.usable_cpus())},
        "torch": probe.probe_torch(),
    }


def auto_section(auto: dict[str, Any]) -> dict[str, Any]:
    """The meter auto picks, why (its own warnings, or why the first choice worked) and the gate to use with it."""
    section = {key: auto[key] for key in ("meter", "source", "error", "notes")}
    if auto["meter"] is None:
        section["why"] = [auto["error"]]
        section["recommended"] = None
        return section
    section["why"] = auto["reasons"] or [_first_choice(auto["meter"])]
    row = recommendation_for(auto["meter"])
    section["recommended"] = (
        None
        if row is None
        else {
            "thresholds": row.thresholds,
            "baseline_runs": row.baseline_runs,
            "ab_repeat": row.ab_repeat,
            "basis": row.basis,
            "options": format_gate_options(row),
            "rule_of_thumb": None if row.thresholds else RULE_OF_THUMB,
        }
    )
    return section


def split_reasons(message: str) -> list[str]:
    """A selection warning joins its steps down with "; ": one per line (a "; " inside parentheses stays)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(message):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and message.startswith("; ", i):
            parts.append(message[start:i])
            start = i + 2
    return [*parts, message[start:]]


def _first_choice(meter: str) -> str:
    if meter.startswith("nvml"):
        extra = ", and the RAPL counters are readable" if meter.endswith("+rapl") else ""
        return f"NVML sees GPUs (auto's first choice){extra}"
    return f"{meter} works"


def nvml_advice(found: dict[str, Any]) -> str | None:
    status, visible = found["status"], found.get(VISIBLE_DEVICES_VAR)
    if status == "no-module":
        return "pip install nvidia-ml-py (energy-bench depends on it: the install is incomplete)"
    if status == "no-driver":
        return "nothing to do without an NVIDIA GPU; on a GPU machine install the NVIDIA driver (nvidia-smi must work)"
    if status in ("init-failed", "query-failed"):
        return "run nvidia-smi: it fails the same way when the driver is broken or the GPU is lost"
    if status == "no-gpu":
        return "nothing to do without an NVIDIA GPU"
    if status == "hidden":
        return f"{VISIBLE_DEVICES_VAR}={visible!r} leaves no GPU to measure: unset it, or list the GPUs to measure"
    if status == "polling":
        return (
            f"nothing to do: GPUs without the counter (before Volta) are measured by polling their power every "
            f"{DEFAULT_POLL_PERIOD_S * 1000:g} ms (meter nvml-power), less exactly than the counter"
        )
    if status == "no-reading":
        return "measure this GPU with another meter (zeus, or --energy-meter=estimate for CPU time)"
    return None


def rapl_advice(found: dict[str, Any]) -> str | None:
    status = found["status"]
    if status == "absent":
        return (
            "virtual machines and containers usually have no RAPL; on bare-metal Linux load the driver "
            "(sudo modprobe intel_rapl_msr, Intel and AMD CPUs) and check again"
        )
    if status == "denied":
        paths = " ".join(found["denied"]) or f"{found['root']}/intel-rapl:*/energy_uj"
        return (
            f"sudo chmod o+r {paths}  (until the next boot; or run as root, or let the Zeus daemon read them). "
            "The kernel made energy_uj root-only because power readings leak what other processes compute "
            "(CVE-2020-8694): open it only on machines whose users you trust"
        )
    if status in ("no-zones", "unreadable"):
        return "this kernel's powercap has no usable package counter: use another meter"
    return None


def zeus_advice(found: dict[str, Any]) -> str | None:
    if found["status"] == "not-installed":
        return (
            f"{ZEUS_INSTALL} to measure AMD GPUs, Apple silicon or Jetson, or RAPL without root through the "
            "Zeus daemon; not needed for NVIDIA GPUs or readable RAPL"
        )
    if found["status"] == "broken":
        return "reinstall zeus in a fresh environment, or uninstall it: auto passes over only a zeus not installed"
    return None


def openmp_advice(settings: dict[str, str | None], usable: int | None) -> list[str]:
    """What the OpenMP settings in the environment do to the CPU-time estimate."""
    advice = []
    policy = settings.get(openmp.ENV_VAR)
    default = openmp.DEFAULT_CHOICE.upper()
    if not policy:
        advice.append(
            f"{openmp.ENV_VAR} unset: energy-bench sets {default} for the code under test, so waiting "
            "threads sleep rather than spin (--energy-omp-wait-policy)"
        )
    elif policy.strip().upper() != default:
        advice.append(
            f"{openmp.ENV_VAR}={policy} wins over energy-bench's {default}: threads that spin while they "
            f"wait add CPU time the estimate counts as joules, more on a busy machine; unset it or pass "
            f"--energy-omp-wait-policy={openmp.DEFAULT_CHOICE}"
        )
    threads = settings.get("OMP_NUM_THREADS")
    if threads and threads.strip().isdigit() and usable and int(threads) > usable:
        advice.append(
            f"OMP_NUM_THREADS={threads} is more than the {usable} CPUs this process may use: threads "
            "wait for each other and the estimate counts that"
        )
    for name in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME"):
        if settings.get(name):
            advice.append(
                f"{name}={settings[name]} changes how long waiting threads spin, and so the CPU time the "
                "estimate counts: keep it the same in every session you compare"
            )
    return advice


# ---------------------------------------------------------------------------- text


def format_report(report: dict[str, Any]) -> str:
    lines = ["energy-bench doctor: what this machine can measure", ""]
    lines += _auto_lines(report["auto"])
    meters = report["meters"]
    lines += ["", *_nvml_lines(meters["nvml"]), *_rapl_lines(meters["rapl"]), *_zeus_lines(meters["zeus"])]
    lines += _estimate_lines(meters["estimate"])
    lines += ["", *_cpu_lines(report["cpu"]), *_openmp_lines(report["openmp"]), *_torch_lines(report["torch"])]
    return "\n".join(printable(line) for line in lines) + "\n"


def _auto_lines(auto: dict[str, Any]) -> list[str]:
    if auto["meter"] is None:
        return [f"--energy-meter=auto fails: {auto['error']}", "  do: fix --energy-gpus or CUDA_VISIBLE_DEVICES"]
    lines = [f"--energy-meter=auto picks: {auto['meter']} ({auto['source']} joules)"]
    lines += [f"  why: {part}" for reason in auto["why"] for part in split_reasons(reason)]
    lines += [f"  note: {note}" for note in auto["notes"]]
    rec = auto["recommended"]
    if rec is not None:
        lines.append(f"  gate with: {rec['options']}  ({rec['basis']})")
        lines.append(f"  on a shared runner: {AB_ADVICE}")
        if rec["rule_of_thumb"]:
            lines.append(f"  thresholds not measured for this meter: {rec['rule_of_thumb']}")
    return lines


def _state(name: str, found: dict[str, Any], works: str) -> list[str]:
    advice = found.get("advice")
    head = (
        f"{name}: {works}"
        if found["status"] in ("counter", "polling", "readable", "installed")
        else (f"{name}: not usable: {found['reason']}")
    )
    return [head, *([f"  do: {advice}"] if advice else [])]


def _nvml_lines(found: dict[str, Any]) -> list[str]:
    works = "energy counters" if found["status"] == "counter" else "power polling"
    lines = _state("NVML (NVIDIA GPUs)", found, works)
    if found["library"]:
        visible = found[VISIBLE_DEVICES_VAR]
        shown = "(unset)" if visible is None else visible
        lines.append(f"  driver {found['driver_version'] or '?'}, {VISIBLE_DEVICES_VAR}={shown}")
    for gpu in found["gpus"]:
        shown = f"cuda:{gpu['cuda_index']}" if gpu["cuda_index"] is not None else "hidden from CUDA"
        counter = "energy counter" if gpu["counter"] else f"no energy counter ({gpu['counter_error']})"
        power = f"{gpu['power_w']:.1f} W now" if gpu["power_w"] is not None else f"no power ({gpu['power_error']})"
        limit = f", limit {gpu['power_limit_w']:g} W" if gpu["power_limit_w"] is not None else ""
        lines.append(f"  GPU {gpu['nvml_index']} {gpu['name']}: {shown}; {counter}; {power}{limit}")
    return lines


def _rapl_lines(found: dict[str, Any]) -> list[str]:
    lines = _state("RAPL (CPU package and DRAM counters)", found, "readable")
    for zone in found["domains"]:
        state = "readable" if zone["readable"] else f"unreadable ({zone['error']})"
        lines.append(f"  {zone['domain']}: {zone['path']} {state}")
    return lines


def _zeus_lines(found: dict[str, Any]) -> list[str]:
    if found["status"] == "not-installed":
        return ["Zeus: not installed", f"  do: {found['advice']}"]
    return _state("Zeus", found, f"installed, version {found['version']}")


def _estimate_lines(found: dict[str, Any]) -> list[str]:
    info = found["info"]
    model = info.get("estimate") or {}
    lines = [f"CPU-time estimate: always works ({info.get('source', 'estimated')} joules)"]
    lines.append(f"  model: {model.get('label') or info.get('cpu_watts_basis')}")
    if model.get("evidence"):
        lines.append(f"  CPU found from: {model['evidence']}")
    if model.get("coefficients_source"):
        lines.append(f"  coefficients: {model['coefficients_source']}")
    if info.get("counts"):
        lines.append(f"  counts: {info['counts']}")
    return lines


def _cpu_lines(cpu: dict[str, Any] | None) -> list[str]:
    if cpu is None:
        return ["CPU: unknown (no /proc/cpuinfo)"]
    lines = [
        f"CPU: {cpu['model_name'] or 'unknown model'} ({cpu['vendor'] or '?'}, family {cpu['family']}, "
        f"model {cpu['model']}; {cpu['usable_cpus']} usable logical CPUs)",
        f"  architecture: {cpu['architecture']} (found by {cpu['architecture_match']})",
    ]
    for name, flags in cpu["native_formats"].items():
        needs = "/".join(cpu_mod.NARROW_FORMAT_FLAGS[name])
        lines.append(f"  {name}: " + (f"native ({', '.join(flags)})" if flags else f"emulated (no {needs})"))
    lines.append(f"  AMX tiles: {'yes' if cpu['amx_tile'] else 'no'} ({cpu_mod.AMX_TILE_FLAG})")
    if not any(cpu["native_formats"].values()):
        lines.append("  the study's stego trains in float32 on this CPU: it has no native 16-bit format")
    return lines


def _openmp_lines(found: dict[str, Any]) -> list[str]:
    set_vars = [f"{k}={v}" for k, v in found["environment"].items() if v is not None]
    lines = [f"OpenMP: {', '.join(set_vars) if set_vars else 'no OpenMP variable set'}"]
    return lines + [f"  {advice}" for advice in found["advice"]]


def _torch_lines(found: dict[str, Any]) -> list[str]:
    if not found["installed"]:
        return ["torch: not installed (the study needs it: pip install -e '.[study]')"]
    if found.get("error"):
        return [f"torch: {found['error']}"]
    cuda = f"CUDA {found['cuda']}" if found["cuda"] else "CPU-only build"
    gpus = ", ".join(found["devices"]) if found["devices"] else "no GPU visible to torch"
    return [f"torch {found['version']}, {cuda}: {gpus}"]
