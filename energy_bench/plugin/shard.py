"""``--energy-shard=K/N``: run the K-th of N deterministic parts of a session's benchmarks.

Items are grouped by shard key (the hook ``pytest_energy_shard_key``, see :mod:`energy_bench.plugin.hookspecs`;
default: the test's module and function name) and the keys are dealt to shards so that shards hold about as many
items each: keys with the most items first, ties by name, each to the shard with the fewest items so far. The split
depends only on the collected items, never on the machine or on hash randomization, so N machines that collect the
same tests split them the same way; the others are reported as deselected. The shard (``K/N``, its keys, its start
and end) is recorded in ``machine_info.energy.shard``, where ``energy-bench merge`` finds it.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from energy_bench.plugin import options

SHARD_OPTIONS: list[options.Option] = [
    (
        "--energy-shard",
        "energy_shard",
        "run only shard K of N (e.g. 2/4): benchmarks split deterministically by shard key (default: test module "
        "and function; the study: model), for running one run on N machines and joining them with energy-bench merge.",
        {},
    ),
]


@dataclass(frozen=True)
class ShardSpec:
    index: int  # 1-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class ShardState:
    spec: ShardSpec
    keys: list[str]
    items: int
    started: str


SHARD_KEY = pytest.StashKey[ShardSpec]()
STATE_KEY = pytest.StashKey[ShardState]()


def parse_shard(text: str) -> ShardSpec:
    """``K/N`` with 1 <= K <= N; ValueError saying what is wrong."""
    index, sep, count = str(text).strip().partition("/")
    if not sep or not index.strip().isdigit() or not count.strip().isdigit():
        raise ValueError(f"{text!r} is not K/N (shard K of N, e.g. 1/4)")
    spec = ShardSpec(int(index), int(count))
    if spec.count < 1 or not 1 <= spec.index <= spec.count:
        raise ValueError(f"{text!r}: K must be between 1 and N (shards are numbered 1..N)")
    return spec


def deal_keys(counts: Mapping[str, int], shards: int) -> list[list[str]]:
    """Keys per shard: the biggest keys first (ties by name), each to the least loaded shard (ties: the first)."""
    load = [0] * shards
    dealt: list[list[str]] = [[] for _ in range(shards)]
    for key in sorted(counts, key=lambda k: (-counts[k], k)):
        target = min(range(shards), key=lambda s: (load[s], s))
        dealt[target].append(key)
        load[target] += counts[key]
    return [sorted(keys) for keys in dealt]


def default_key(item: pytest.Item) -> str:
    """The test's module and function name: the node id without its parameters."""
    return item.nodeid.split("[", 1)[0]


def shard_key(config: pytest.Config, item: pytest.Item) -> str:
    key = config.hook.pytest_energy_shard_key(item=item)
    return default_key(item) if key is None else str(key)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser, SHARD_OPTIONS)


def pytest_configure(config: pytest.Config) -> None:
    value = options.get(config, "energy_shard")
    if value in (None, ""):
        return
    try:
        config.stash[SHARD_KEY] = parse_shard(value)
    except ValueError as exc:
        raise pytest.UsageError(f"--energy-shard: {exc}") from None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # trylast: split what the other filters (-k, -m, plugins) left.
    spec = config.stash.get(SHARD_KEY, None)
    if spec is None:
        return
    keys = {id(item): shard_key(config, item) for item in items}
    mine = set(deal_keys(Counter(keys.values()), spec.count)[spec.index - 1])
    kept = [item for item in items if keys[id(item)] in mine]
    dropped = [item for item in items if keys[id(item)] not in mine]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept
    config.stash[STATE_KEY] = ShardState(spec, sorted(mine), len(kept), _now())


def shard_record(state: ShardState) -> dict:
    return {
        "shard": str(state.spec),
        "keys": list(state.keys),
        "items": state.items,
        "started": state.started,
        "finished": _now(),
    }


@pytest.hookimpl(optionalhook=True, trylast=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    # trylast: after the meter's description has been put in machine_info["energy"].
    state = config.stash.get(STATE_KEY, None)
    if state is not None:
        machine_info.setdefault("energy", {})["shard"] = shard_record(state)
