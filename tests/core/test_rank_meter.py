"""RankMeter: windows shared by ranks, joules summed once per domain, decisions taken together (no torch).

The ranks are threads of this process joined by :class:`ThreadWorld`, a communicator with the shape of the torch
one (a barrier, an all-gather of plain values); each rank measures with its own fake meter of known joules.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from energy_bench.distributed.meter import EmptyMeter, RankMeter, node_share, plan_layout
from energy_bench.distributed.ranks import Place, is_distributed, launched_by_torchrun, place_ranks
from energy_bench.meters import CompositeMeter, EstimateMeter, Meter, MeterError, RaplMeter, Reading, Source
from tests.fakes.powercap import FakePowercap


class ThreadWorld:
    """``size`` ranks as threads: a barrier and an all-gather, like a gloo group."""

    def __init__(self, size: int):
        self.size = size
        self._barrier = threading.Barrier(size, timeout=10)
        self._slots: list = [None] * size

    def rank(self, rank: int) -> RankComm:
        return RankComm(self, rank)


class RankComm:
    def __init__(self, world: ThreadWorld, rank: int):
        self.world, self.rank, self.world_size = world, rank, world.size

    def barrier(self) -> None:
        self.world._barrier.wait()

    def all_gather(self, value):
        self.world._slots[self.rank] = value
        self.world._barrier.wait()
        gathered = list(self.world._slots)
        self.world._barrier.wait()  # nobody overwrites a slot before everyone has read
        return gathered


class FixedMeter(Meter):
    """Joules per window known in advance: ``joules[domain]`` per window, ``seconds`` long."""

    def __init__(self, joules: dict[str, float], seconds: float = 1.0, name: str = "fixed", fail_at: int | None = None):
        self.joules, self.seconds, self.name = joules, seconds, name
        self.windows = 0
        self.fail_at = fail_at

    def begin(self):
        return None

    def end(self, mark) -> Reading:
        self.windows += 1
        if self.fail_at == self.windows:
            raise MeterError("counter vanished")
        return Reading(dict(self.joules), self.seconds, Source.MEASURED, self.name)

    def domains(self):
        return list(self.joules)

    def info(self):
        return {
            "meter": self.name,
            "source": "measured",
            "gpus": [{"name": "Fake GPU", "domain": d} for d in self.joules],
        }


def place(rank: int, world: int = 2, node: int = 0, leader: bool | None = None) -> Place:
    return Place(rank, world, node, f"host{node}", rank, rank == 0 if leader is None else leader)


def run_ranks(meters: list[Meter], places: list[Place], work):
    """Build a RankMeter on every rank (threads) and return ``work(rank_meter)`` of each, in rank order."""
    world = ThreadWorld(len(meters))

    def one(rank: int):
        rank_meter = RankMeter.build(meters[rank], world.rank(rank), places[rank])
        return work(rank_meter)

    with ThreadPoolExecutor(len(meters)) as pool:
        return list(pool.map(one, range(len(meters))))


def window(rank_meter: RankMeter) -> Reading:
    return rank_meter.end(rank_meter.begin())


def test_every_rank_gets_the_sum_of_all_ranks_own_readings():
    meters = [FixedMeter({"gpu0": 10.0}, 1.0), FixedMeter({"gpu1": 15.5}, 1.2)]
    readings = run_ranks(meters, [place(0), place(1)], window)
    for reading in readings:
        assert reading.joules == {"node0/gpu0": 10.0, "node0/gpu1": 15.5}
        assert reading.total == pytest.approx(10.0 + 15.5)  # each rank's own reading, counted once
        assert reading.seconds == 1.2  # the longest rank's
        assert reading.meter == "fixed" and reading.source is Source.MEASURED


def test_domains_are_named_per_node_device_and_process():
    meters = [
        CompositeMeter([FixedMeter({"gpu0": 1.0}, name="nvml-counter"), EstimateMeter(5.0)]),
        CompositeMeter([FixedMeter({"gpu0": 2.0}, name="nvml-counter"), EstimateMeter(5.0)]),
    ]
    places = [place(0, node=0, leader=True), place(1, node=1, leader=True)]
    reading = run_ranks(meters, places, window)[0]
    assert set(reading.joules) == {"node0/gpu0", "node1/gpu0", "node0/rank0/cpu", "node1/rank1/cpu"}
    assert reading.meter == "nvml-counter+estimate" and reading.source is Source.ESTIMATED


def test_a_gpu_measured_by_two_ranks_of_a_node_is_counted_once():
    meters = [FixedMeter({"gpu0": 7.0}), FixedMeter({"gpu0": 7.1})]  # two ranks sharing one GPU

    def measure(rank_meter):
        return window(rank_meter), rank_meter.info()

    (reading, info), _ = run_ranks(meters, [place(0), place(1)], measure)
    assert reading.joules == {"node0/gpu0": 7.0}  # rank 0's reading; rank 1's is the same GPU
    assert info["notes"] == ["node0/gpu0 is measured by ranks 0 and 1: counted once (rank 0)"]


def test_domains_found_only_in_readings_are_counted_once_per_node():
    # A meter that learns some domains from its first reading (Zeus's DRAM, for one) and reads them node-wide.
    class Late(FixedMeter):
        def domains(self):
            return []

    meters = [Late({"dram0": 3.0}), Late({"dram0": 3.2}), Late({"dram0": 5.0})]
    places = [place(0, 3, node=0), place(1, 3, node=0, leader=False), place(2, 3, node=1, leader=True)]
    reading = run_ranks(meters, places, window)[0]
    assert reading.joules == {"node0/dram0": 3.0, "node1/dram0": 5.0}


def test_temperatures_are_the_ranks_own_under_job_wide_names():
    class Warm(FixedMeter):
        def temperatures(self):
            return {d: 40.0 + i for i, d in enumerate(self.joules)}

    meters = [Warm({"gpu0": 1.0}), Warm({"gpu1": 1.0})]
    temps = run_ranks(meters, [place(0), place(1)], lambda m: m.temperatures())
    assert temps == [{"node0/gpu0": 40.0}, {"node0/gpu1": 40.0}]


def test_same_index_on_other_devices_is_not_merged():
    # CUDA_VISIBLE_DEVICES pins one GPU per process: both see "gpu0", but NVML's UUIDs differ.
    described = [
        {
            "rank": r,
            "node": 0,
            "host": "h",
            "local_rank": r,
            "min_round_s": 1.0,
            "update_period_s": 0.1,
            "parts": [
                {
                    "meter": "nvml-counter",
                    "scope": "device",
                    "domains": ["gpu0"],
                    "info": {"source": "measured", "gpus": [{"domain": "gpu0", "uuid": f"GPU-{r}"}]},
                }
            ],
        }
        for r in range(2)
    ]
    layout = plan_layout(described)
    assert layout.names == [{"gpu0": "node0/gpu0"}, {"gpu0": "node0/rank1/gpu0"}]
    assert layout.notes == []


def test_node_wide_counters_are_read_by_the_node_leader_only(tmp_path):
    FakePowercap(tmp_path / "powercap")
    meters = []
    for _ in range(2):
        meters.append(
            CompositeMeter(
                [
                    FixedMeter({"gpu0": 1.0}, name="nvml-counter"),
                    RaplMeter(str(tmp_path / "powercap"), guard_period_s=None),
                ]
            )
        )
    leader = node_share(meters[0], node_leader=True)
    other = node_share(meters[1], node_leader=False)
    assert leader is meters[0]
    assert not isinstance(other, CompositeMeter) and "package-0" not in other.domains()
    assert isinstance(node_share(RaplMeter(str(tmp_path / "powercap"), guard_period_s=None), False), EmptyMeter)
    reading = run_ranks([leader, other], [place(0), place(1)], window)[0]
    assert sorted(reading.joules) == ["node0/dram-0", "node0/gpu0", "node0/package-0"]
    leader.close()


def test_a_failed_window_on_one_rank_fails_it_on_every_rank():
    meters = [FixedMeter({"gpu0": 1.0}), FixedMeter({"gpu1": 1.0}, fail_at=2)]

    def two_windows(rank_meter):
        window(rank_meter)
        with pytest.raises(MeterError, match="rank 1: counter vanished"):
            window(rank_meter)
        return True

    assert run_ranks(meters, [place(0), place(1)], two_windows) == [True, True]


def test_ranks_agree_on_the_slowest_time_and_on_stopping():
    meters = [FixedMeter({"gpu0": 1.0}), FixedMeter({"gpu1": 1.0})]

    def decide(rank_meter):
        agree = rank_meter.agreement
        return agree.slowest(0.1 + rank_meter.place.rank), agree.any(rank_meter.place.rank == 1)

    assert run_ranks(meters, [place(0), place(1)], decide) == [(1.1, True), (1.1, True)]


def test_rounds_are_sized_alike_on_every_rank():
    # RAPL alone: the leader needs 0.1 s windows, the other rank measures nothing; both size rounds the same.
    meters = [FixedMeter({"package-0": 1.0}), EmptyMeter()]
    meters[0].min_round_s = 0.1
    sizes = run_ranks(meters, [place(0), place(1)], lambda m: m.min_round_s)
    assert sizes == [0.1, 0.1]


def test_machine_info_describes_every_rank():
    meters = [FixedMeter({"gpu0": 1.0}, name="nvml-counter"), FixedMeter({"gpu1": 1.0}, name="nvml-counter")]
    info = run_ranks(meters, [place(0), place(1)], lambda m: m.info())[0]
    assert info["meter"] == "nvml-counter"
    assert [(p["rank"], p["gpus"][0]["name"]) for p in info["parts"]] == [(0, "Fake GPU"), (1, "Fake GPU")]
    assert info["distributed"]["ranks"][1]["domains"] == {"gpu1": "node0/gpu1"}
    assert "notes" not in info


def test_places_are_told_apart_by_host():
    gathered = [
        {"host": "a", "local_rank": 0},
        {"host": "a", "local_rank": 1},
        {"host": "b", "local_rank": None},
        {"host": "b", "local_rank": None},
    ]
    places = [place_ranks(r, gathered) for r in range(4)]
    assert [(p.node, p.local_rank, p.node_leader) for p in places] == [
        (0, 0, True),
        (0, 1, False),
        (1, 0, True),
        (1, 1, False),
    ]


def test_detection_reads_torchrun_environment():
    assert launched_by_torchrun({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})
    assert not launched_by_torchrun({"RANK": "0"})
    if "torch.distributed" not in sys.modules:
        assert is_distributed({"RANK": "1", "WORLD_SIZE": "2"})
        assert not is_distributed({"RANK": "0", "WORLD_SIZE": "1"})
        assert not is_distributed({})


def test_energy_gpus_is_refused_under_torchrun(pytester: pytest.Pytester, monkeypatch) -> None:
    # Refused before joining the job: no process group is needed to say so.
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--energy-gpus=0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--energy-gpus: under torchrun each rank measures its own CUDA device*"])
