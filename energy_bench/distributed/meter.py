"""The session meter of one rank of a distributed job: windows shared by all ranks, joules summed over them.

Each rank builds its own share of the job's meter (:func:`node_share`): its GPU, its process's CPU estimate, and
the node's RAPL counters on the node's leader only, since every rank of a node would read the same package. A
window then runs on every rank at once::

    begin():  barrier, local begin           (all ranks start together)
    end():    barrier, local end, all_gather  (after the slowest rank's work; the readings are plain values)

and every rank gets the same :class:`Reading`: the sum of the ranks' joules, domain by domain (named per node and
device, e.g. ``node0/gpu1``, ``node0/package-0``, ``node1/rank5/cpu``), over the longest rank's seconds. The
barriers and the gather are outside the timed part of a round (the round loop opens and closes windows outside its
timer). A domain that two ranks of one node both report (a GPU shared by two ranks, a node-wide domain of a meter
that does not say it is node-wide) is counted once, from the lower rank; a meter may declare its reach with a
``scope`` attribute (one of :data:`SCOPES`).

:meth:`RankMeter.slowest` and :meth:`RankMeter.any` let the round loop take the same decisions on every rank (calls
per round, stopping), which collective code such as DistributedDataParallel needs to avoid hanging.

Pure Python over a :class:`~energy_bench.distributed.ranks.Communicator`: no torch here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from energy_bench.distributed.ranks import Communicator, Place
from energy_bench.meters import CompositeMeter, EstimateMeter, Meter, MeterError, RaplMeter, Reading, Source

#: how far a meter's domains reach: "node" (shared by every process of a node), "device" (one GPU), "process"
SCOPES = ("node", "device", "process")


class EmptyMeter(Meter):
    """Measures nothing: the share of a rank whose node's counters another rank reads."""

    name = "none"
    source = Source.MEASURED

    def begin(self) -> float:
        return time.monotonic()

    def end(self, mark: float) -> Reading:
        return Reading({}, time.monotonic() - mark, self.source, self.name)

    def info(self) -> dict[str, Any]:
        return {"meter": self.name, "source": self.source.value, "counts": "nothing: another rank reads this node"}


def parts_of(meter: Meter) -> list[Meter]:
    return list(meter.meters) if isinstance(meter, CompositeMeter) else [meter]


def scope_of(meter: Meter) -> str:
    """How far ``meter``'s domains reach; a meter may say so itself with a ``scope`` attribute."""
    declared = getattr(meter, "scope", None)
    if declared in SCOPES:
        return declared
    if isinstance(meter, RaplMeter):
        return "node"
    if isinstance(meter, EstimateMeter):
        return "process"
    return "device"


def node_share(meter: Meter, node_leader: bool) -> Meter:
    """What one rank measures of ``meter``: everything on its node's leader, the node-wide parts nowhere else."""
    if node_leader:
        return meter
    kept = []
    for part in parts_of(meter):
        if scope_of(part) == "node":
            part.close()
        else:
            kept.append(part)
    if not kept:
        return EmptyMeter()
    return kept[0] if len(kept) == 1 else CompositeMeter(kept)


def describe(meter: Meter, place: Place) -> dict[str, Any]:
    """What a rank tells the others about its share of the meter (plain values only)."""
    return {
        "rank": place.rank,
        "node": place.node,
        "host": place.host,
        "local_rank": place.local_rank,
        "min_round_s": float(meter.min_round_s),
        "update_period_s": float(meter.update_period_s),
        "parts": [
            {"meter": part.name, "scope": scope_of(part), "domains": list(part.domains()), "info": part.info()}
            for part in parts_of(meter)
            if not isinstance(part, EmptyMeter)
        ],
    }


def _device_ids(info: Mapping[str, Any]) -> dict[str, str]:
    """Domain -> a device's unique id (NVML's UUID) where the meter's description gives one."""
    ids = {}
    for gpu in info.get("gpus") or ():
        if isinstance(gpu, Mapping) and gpu.get("domain") and gpu.get("uuid"):
            ids[str(gpu["domain"])] = str(gpu["uuid"])
    return ids


@dataclass
class Layout:
    """How every rank's domains are named in the sum (None: counted by a lower rank), and what the job measures."""

    names: list[dict[str, str | None]]
    meter: str
    source: str
    min_round_s: float
    update_period_s: float
    ranks: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def plan_layout(described: Sequence[Mapping[str, Any]]) -> Layout:
    """Global domain names for every rank (``described`` in rank order, each from :func:`describe`)."""
    owner: dict[str, tuple[int, str | None]] = {}  # global name -> (rank, device id)
    names: list[dict[str, str | None]] = []
    notes: list[str] = []
    for entry in described:
        rank, node = int(entry["rank"]), int(entry["node"])
        mine: dict[str, str | None] = {}
        for part in entry["parts"]:
            ids = _device_ids(part.get("info") or {})
            for domain in part["domains"]:
                if part["scope"] == "process":
                    mine[domain] = f"node{node}/rank{rank}/{domain}"
                    continue
                name = f"node{node}/{domain}"
                if name in owner:
                    first, first_id = owner[name]
                    if first_id is not None and ids.get(domain) is not None and first_id != ids[domain]:
                        name = f"node{node}/rank{rank}/{domain}"  # another device under the same index
                    else:
                        mine[domain] = None
                        notes.append(f"{name} is measured by ranks {first} and {rank}: counted once (rank {first})")
                        continue
                owner[name] = (rank, ids.get(domain))
                mine[domain] = name
        names.append(mine)
    parts = [part for entry in described for part in entry["parts"]]
    meter_names = [piece for part in parts for piece in str(part["meter"]).split("+")]
    estimated = any((part.get("info") or {}).get("source") == Source.ESTIMATED.value for part in parts)
    return Layout(
        names=names,
        meter="+".join(dict.fromkeys(meter_names)) or EmptyMeter.name,
        source=Source.ESTIMATED.value if estimated else Source.MEASURED.value,
        min_round_s=max(float(entry["min_round_s"]) for entry in described),
        update_period_s=max(float(entry["update_period_s"]) for entry in described),
        ranks=[dict(entry) for entry in described],
        notes=notes,
    )


def plain_reading(reading: Reading) -> dict[str, Any]:
    return {
        "joules": {domain: float(joules) for domain, joules in reading.joules.items()},
        "seconds": float(reading.seconds),
        "source": Source(reading.source).value,
        "warnings": list(reading.warnings),
    }


def sum_readings(layout: Layout, readings: Sequence[Mapping[str, Any]]) -> Reading:
    """The job's reading from every rank's plain reading (rank order): joules summed, the longest seconds kept.

    Raises :class:`MeterError` when any rank's window failed, so that every rank stops measuring together.
    """
    failed = [f"rank {rank}: {r['error']}" for rank, r in enumerate(readings) if r.get("error")]
    if failed:
        raise MeterError("; ".join(failed))
    joules: dict[str, float] = {}
    for rank, (names, reading) in enumerate(zip(layout.names, readings)):
        for domain, value in reading["joules"].items():
            if domain in names:
                name = names[domain]
            else:  # not listed beforehand: named per node, and like a device two ranks of a node share, counted once
                name = f"node{layout.ranks[rank]['node']}/{domain}"
                if name in joules:
                    continue
            if name is not None:
                joules[name] = joules.get(name, 0.0) + float(value)
    measured = all(r["source"] == Source.MEASURED.value for r in readings)
    return Reading(
        joules=joules,
        seconds=max(float(r["seconds"]) for r in readings),
        source=Source.MEASURED if measured else Source.ESTIMATED,
        meter=layout.meter,
        warnings=tuple(dict.fromkeys(w for r in readings for w in r["warnings"])),
    )


@dataclass(frozen=True)
class RankMark:
    local: Any = None
    error: str | None = None


class RankMeter(Meter):
    """One rank's view of the job's meter: ``local`` is its share, ``comm`` reaches the other ranks."""

    def __init__(self, local: Meter, comm: Communicator, place: Place, layout: Layout):
        self.local = local
        self.comm = comm
        self.place = place
        self.layout = layout
        self.name = layout.meter
        self.source = Source(layout.source)
        # the same on every rank, so that every rank sizes its rounds alike
        self.min_round_s = layout.min_round_s
        self.update_period_s = layout.update_period_s

    @classmethod
    def build(cls, local: Meter, comm: Communicator, place: Place) -> RankMeter:
        """Every rank calls this at once: it gathers the ranks' descriptions."""
        return cls(local, comm, place, plan_layout(comm.all_gather(describe(local, place))))

    @property
    def agreement(self) -> RankMeter:
        """What the round loop asks to take decisions together (see :meth:`slowest` and :meth:`any`)."""
        return self

    def begin(self) -> RankMark:
        self._barrier()
        try:
            return RankMark(self.local.begin())
        except MeterError as exc:  # told to every rank at end(), so all of them stop measuring together
            return RankMark(error=str(exc) or type(exc).__name__)

    def end(self, mark: RankMark) -> Reading:
        self._barrier()
        plain: dict[str, Any] = {"error": mark.error}
        if mark.error is None:
            try:
                plain = plain_reading(self.local.end(mark.local))
            except MeterError as exc:
                plain = {"error": str(exc) or type(exc).__name__}
        return sum_readings(self.layout, self._gather(plain))

    def slowest(self, seconds: float) -> float:
        """The longest of every rank's ``seconds``."""
        return max(self._gather(float(seconds)))

    def any(self, flag: Any) -> bool:
        """True on every rank when ``flag`` is true on any."""
        return any(self._gather(bool(flag)))

    def _barrier(self) -> None:
        try:
            self.comm.barrier()
        except RuntimeError as exc:  # a rank died or timed out: this window cannot be measured
            raise MeterError(f"ranks out of step: {exc}") from None

    def _gather(self, value: Any) -> list[Any]:
        try:
            return self.comm.all_gather(value)
        except RuntimeError as exc:
            raise MeterError(f"ranks out of step: {exc}") from None

    def domains(self) -> list[str]:
        return [name for names in self.layout.names for name in names.values() if name is not None]

    def temperatures(self) -> dict[str, float]:
        """This rank's own devices, under their job-wide names.

        Local only, without a collective: a cooldown reads them as often as its own GPU needs, and the next window's
        barrier then waits for the slowest rank to cool down.
        """
        names = self.layout.names[self.place.rank]
        return {names[d]: t for d, t in self.local.temperatures().items() if names.get(d) is not None}

    def info(self) -> dict[str, Any]:
        parts = []
        for entry in self.layout.ranks:
            own = entry["rank"] == self.place.rank
            infos = [part.info() for part in parts_of(self.local)] if own else [p["info"] for p in entry["parts"]]
            parts.extend({**info, "rank": entry["rank"], "node": entry["node"]} for info in infos if info)
        info: dict[str, Any] = {
            "meter": self.name,
            "source": self.source.value,
            "parts": [p for p in parts if p.get("meter") != EmptyMeter.name],
            "distributed": {
                "world_size": self.place.world_size,
                "nodes": list(dict.fromkeys(entry["host"] for entry in self.layout.ranks)),
                "ranks": [
                    {
                        "rank": entry["rank"],
                        "node": entry["node"],
                        "host": entry["host"],
                        "local_rank": entry["local_rank"],
                        "domains": {d: n for d, n in names.items() if n is not None},
                    }
                    for entry, names in zip(self.layout.ranks, self.layout.names)
                ],
            },
        }
        if self.layout.notes:
            info["notes"] = list(self.layout.notes)
        return info

    def close(self) -> None:
        self.local.close()
