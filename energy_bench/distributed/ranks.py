"""Which process of a torch.distributed job this is, and how the job's processes talk to each other.

A job is distributed when ``torch.distributed`` is initialized with more than one rank, or when torchrun's
environment (``RANK``, ``WORLD_SIZE``; ``LOCAL_RANK``) says so. Under torchrun the harness initializes the default
process group itself when the code under test has not (``env://``; torch picks gloo for CPU tensors and NCCL for
CUDA ones), so tests should call ``init_process_group`` only when ``torch.distributed.is_initialized()`` is false.

The harness's own messages (barriers, plain readings) go through a gloo group: the default one when it is gloo,
otherwise a gloo group made for them, so they never need a GPU or disturb NCCL streams.

torch is imported only inside :class:`TorchCommunicator`, never at import time.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: set by torchrun for every process it starts
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class Communicator(Protocol):
    """What the harness needs of a distributed job: a barrier and a gather of plain values."""

    rank: int
    world_size: int

    def barrier(self) -> None: ...

    def all_gather(self, value: Any) -> list[Any]: ...


def launched_by_torchrun(environ: Mapping[str, str] = os.environ) -> bool:
    """True when torchrun's environment is present (``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``)."""
    return all(name in environ for name in TORCHRUN_VARIABLES)


def is_distributed(environ: Mapping[str, str] = os.environ) -> bool:
    """True in a job of two ranks or more: torch.distributed initialized, or ``RANK``/``WORLD_SIZE`` in the env."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if "RANK" not in environ or "WORLD_SIZE" not in environ:
        return False
    try:
        return int(environ["WORLD_SIZE"]) > 1
    except ValueError:
        return False


@dataclass(frozen=True)
class Place:
    """Where one rank runs: its node (numbered in rank order of the hosts), its rank on that node."""

    rank: int
    world_size: int
    node: int
    host: str
    local_rank: int
    #: the lowest rank of its node: the one that reads the node's shared counters (RAPL)
    node_leader: bool


def place_ranks(rank: int, gathered: list[Mapping[str, Any]]) -> Place:
    """This rank's :class:`Place` from every rank's ``{"host": ..., "local_rank": int | None}`` (in rank order).

    Nodes are told apart by host name. ``local_rank`` is torchrun's ``LOCAL_RANK`` where set, else the rank's
    position among the ranks of its host.
    """
    hosts = [str(entry["host"]) for entry in gathered]
    nodes = list(dict.fromkeys(hosts))
    host = hosts[rank]
    same_host = [r for r, h in enumerate(hosts) if h == host]
    local_rank = gathered[rank].get("local_rank")
    if not isinstance(local_rank, int):
        local_rank = same_host.index(rank)
    return Place(rank, len(gathered), nodes.index(host), host, local_rank, same_host[0] == rank)


def where_am_i(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """What this rank tells the others about where it runs."""
    local = environ.get("LOCAL_RANK", "")
    return {"host": socket.gethostname(), "local_rank": int(local) if local.isdigit() else None}


class TorchCommunicator:
    """A :class:`Communicator` over torch.distributed, initializing the default process group where needed."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self._dist = dist
        #: True when the harness initialized the default group (and so destroys it at the end)
        self.created = False
        if not dist.is_initialized():
            dist.init_process_group()  # env:// (torchrun); gloo for CPU tensors, plus NCCL where CUDA is available
            self.created = True
        config = getattr(dist, "get_backend_config", dist.get_backend)()  # e.g. "cpu:gloo,cuda:nccl"
        self.backend = str(config)
        only_gloo = {part.rpartition(":")[2] for part in self.backend.split(",")} == {"gloo"}
        self._group = None if only_gloo else dist.new_group(backend="gloo")
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()

    def barrier(self) -> None:
        self._dist.barrier(group=self._group)

    def all_gather(self, value: Any) -> list[Any]:
        gathered: list[Any] = [None] * self.world_size
        # weights_only: the values are plain (numbers, strings, lists, dicts), and nothing else is unpickled
        self._dist.all_gather_object(gathered, value, group=self._group, weights_only=True)
        return gathered

    def close(self) -> None:
        if self.created and self._dist.is_initialized():
            self._dist.destroy_process_group()
            self.created = False


def cuda_index(local_rank: int) -> int:
    """This rank's CUDA device: the current one where the code under test started CUDA, else ``LOCAL_RANK``.

    Where a node has fewer visible CUDA devices than ranks, ranks share them (``local_rank % count``); a GPU
    measured by two ranks of a node is then counted once. Where torch sees no CUDA device at all, the index is the
    local rank (torchrun's convention of one GPU per local rank).
    """
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.current_device()
    count = torch.cuda.device_count()
    return local_rank % count if count else local_rank
