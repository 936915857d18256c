"""Beyond one process: energy under torchrun, and the study spread over machines with Ray.

* :mod:`.ranks`: which process of a torch.distributed job this is (rank, node, local rank) and the job's
  communicator (a gloo group for barriers and gathers of plain values).
* :mod:`.meter`: :class:`~.meter.RankMeter`, the session meter of one rank: every window opens and closes on all
  ranks together, each rank reads its own share (its GPU, its process's CPU estimate, the node's RAPL counters on one
  rank per node) and every rank gets the sum.
* :mod:`.plugin`: the pytest sub-plugin that turns it on under torchrun and keeps saving and printing on rank 0.
* :mod:`.ray_driver`: ``energy-bench run --ray``: shards of a run as Ray tasks, merged into one run.

Nothing here imports torch or Ray at import time: they load only where a job is distributed.
"""
