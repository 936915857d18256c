"""The torchrun sub-plugin: in a job of several ranks, the session meter spans them and rank 0 alone reports.

Loaded with the harness (``pytest_plugins`` of :mod:`energy_bench.plugin`); in a single process it does nothing and
imports nothing. Under torchrun (or with torch.distributed initialized) it

* joins the job (initializing the default process group when the code under test has not, see
  :mod:`energy_bench.distributed.ranks`) and builds the session meter as a :class:`RankMeter`: each rank measures
  its own CUDA device (``gpus=[its index]``), its own process's CPU estimate, and its node's RAPL counters on the
  node's first rank only; every window is shared by all ranks and every rank records the sum;
* keeps rank 0 the only one that saves (``--benchmark-autosave``, ``--benchmark-save``, ``--benchmark-json``),
  compares (``--energy-compare``) and prints the tables: the other ranks drop their copies of the records.

Every rank must run the same benchmarks in the same order: a window waits for all ranks at its barriers.
"""

from __future__ import annotations

import pytest

from energy_bench.distributed import ranks
from energy_bench.distributed.meter import RankMeter, node_share
from energy_bench.meters import MeterUnavailable, select_meter
from energy_bench.plugin.session import get_session
from energy_bench.plugin.settings import Settings

COMM_KEY = pytest.StashKey["ranks.TorchCommunicator"]()


def build_rank_meter(settings: Settings, comm: ranks.Communicator, place: ranks.Place) -> RankMeter:
    """This rank's share of the job's meter; every rank calls it at once. pytest.UsageError on any rank's failure."""
    local, error = None, None
    gpu = ranks.cuda_index(place.local_rank)
    try:
        local = select_meter(
            settings.meter, gpus=(gpu,), powercap_root=settings.powercap_root, cpu_watts=settings.cpu_watts
        )
    except MeterUnavailable as exc:
        error = f"--energy-meter={settings.meter}: rank {place.rank} (CUDA device {gpu}): {exc}"
    errors = [e for e in comm.all_gather(error) if e]  # all ranks stop, not only the one that failed
    if errors:
        if local is not None:
            local.close()
        raise pytest.UsageError(errors[0])
    return RankMeter.build(node_share(local, place.node_leader), comm, place)


def pytest_configure(config: pytest.Config) -> None:
    # Runs before the fixtures plugin's configure (registered after it), which would build a one-process meter.
    if not ranks.is_distributed():
        return
    session = get_session(config)
    if session.settings.gpus is not None:
        raise pytest.UsageError(
            "--energy-gpus: under torchrun each rank measures its own CUDA device; leave --energy-gpus out"
        )
    try:
        comm = ranks.TorchCommunicator()
    except (ValueError, RuntimeError) as exc:
        raise pytest.UsageError(f"torch.distributed: cannot join the job ({exc}); launch with torchrun") from None
    config.stash[COMM_KEY] = comm
    place = ranks.place_ranks(comm.rank, comm.all_gather(ranks.where_am_i()))
    session.meter = build_rank_meter(session.settings, comm, place)


def _other_rank(config: pytest.Config) -> bool:
    comm = config.stash.get(COMM_KEY, None)
    return comm is not None and comm.rank != 0


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    # Before pytest-benchmark saves and the gate loads its baseline: on ranks other than 0, neither happens.
    config = session.config
    if not _other_rank(config):
        return
    bench_session = getattr(config, "_benchmarksession", None)
    if bench_session is not None:
        bench_session.save = bench_session.autosave = bench_session.json = None
    config.option.energy_compare = None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int):
    # Rank 0 holds the job's records (the sums over ranks); the others' copies would print every table twice.
    bench_session = getattr(session.config, "_benchmarksession", None)
    if _other_rank(session.config) and bench_session is not None:
        bench_session.benchmarks.clear()
    return (yield)


def pytest_unconfigure(config: pytest.Config) -> None:
    comm = config.stash.get(COMM_KEY, None)
    if comm is not None:
        session = get_session(config)
        if session.meter is not None:  # before the process group goes: nothing may use it afterwards
            session.meter.close()
            session.meter = None
        comm.close()
