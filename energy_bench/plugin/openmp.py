"""OMP_WAIT_POLICY for the code under test, set before it loads the OpenMP runtime (``--energy-omp-wait-policy``).

With the default (active) policy, OpenMP worker threads spin while they wait for work. When another process takes
a core, a spinning thread waits for its preempted sibling and burns CPU time doing so: the CPU-time estimate then
reads more joules for the same work, and much more variable ones. PASSIVE makes waiting threads sleep, which
keeps CPU time steady under load at some cost in wall time when the machine is idle. The OpenMP runtime (libgomp,
which torch loads) reads the variable once, when it is loaded, so it has to be set before a conftest imports torch:
the core plugin applies it in ``pytest_load_initial_conftests``.

Choices: ``passive`` (the default, unless the environment already sets OMP_WAIT_POLICY: that then wins), ``active``
(set explicitly), ``keep`` (leave the environment alone). The effective policy and who set it go into
``machine_info.energy`` (``omp_wait_policy``, ``omp_wait_policy_source``); when the runtime was loaded before the
hook ran (torch imported by an earlier plugin, or pytest started from a script that had imported it), nothing is
changed and the record says it could not be applied.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import pytest

ENV_VAR = "OMP_WAIT_POLICY"
CHOICES = ("passive", "active", "keep")
DEFAULT_CHOICE = "passive"
OPTION = "energy_omp_wait_policy"
SOURCE_PLUGIN = "energy-bench"
SOURCE_ENVIRONMENT = "environment"
SOURCE_NOT_SET = "not set"
_RUNTIME = re.compile(r"\S*/(libgomp|libiomp5|libomp)[^/\s]*\.so[^/\s]*")

POLICY_KEY = pytest.StashKey["WaitPolicy"]()


@dataclass(frozen=True)
class WaitPolicy:
    """The policy in force for the code under test (None: the runtime's default) and who set it."""

    policy: str | None
    source: str

    def describe(self) -> dict[str, Any]:
        return {"omp_wait_policy": self.policy, "omp_wait_policy_source": self.source}


def parse_choice(value: Any) -> str | None:
    """passive|active|keep (any case), None when not given; pytest.UsageError otherwise."""
    if value in (None, ""):
        return None
    choice = str(value).strip().lower()
    if choice not in CHOICES:
        raise pytest.UsageError(f"--energy-omp-wait-policy: {value!r} is not one of {', '.join(CHOICES)}")
    return choice


def openmp_loaded() -> str | None:
    """What already loaded an OpenMP runtime into this process ("torch", or the library's name), else None."""
    if "torch" in sys.modules:
        return "torch"
    try:
        with open("/proc/self/maps") as maps:
            found = _RUNTIME.search(maps.read())
    except OSError:  # no /proc (macOS): torch is what would have brought the runtime in
        return None
    return found.group(1) if found else None


def apply(choice: str | None, environ: MutableMapping[str, str] = os.environ) -> WaitPolicy:
    """Set OMP_WAIT_POLICY in ``environ`` for ``choice`` (None: the default) unless it is too late."""
    current = environ.get(ENV_VAR)
    if choice == "keep" or (choice is None and current):
        return WaitPolicy(current, SOURCE_ENVIRONMENT if current else SOURCE_NOT_SET)
    wanted = (choice or DEFAULT_CHOICE).upper()
    if current and current.strip().upper() == wanted:
        return WaitPolicy(current, SOURCE_ENVIRONMENT)
    loaded = openmp_loaded()
    if loaded:
        return WaitPolicy(current, f"not applied: {loaded} loaded before")
    environ[ENV_VAR] = wanted
    return WaitPolicy(wanted, SOURCE_PLUGIN)


def choice_from_early_config(early_config: pytest.Config) -> str | None:
    """The option from the command line (already parsed as known args) or its ini twin."""
    value = getattr(early_config.known_args_namespace, OPTION, None)
    if value is None:
        try:
            value = early_config.getini(OPTION)
        except ValueError:
            value = None
    return parse_choice(value)


def apply_for(early_config: pytest.Config) -> None:
    early_config.stash[POLICY_KEY] = apply(choice_from_early_config(early_config))


def policy_of(config: pytest.Config) -> WaitPolicy | None:
    return config.stash.get(POLICY_KEY, None)
