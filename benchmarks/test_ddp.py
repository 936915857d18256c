"""Training with DistributedDataParallel as a benchmark: the energy of all ranks, recorded once by rank 0.

    torchrun --nproc-per-node=2 -m pytest benchmarks/test_ddp.py --energy-meter=estimate   # CPU, gloo
    torchrun --nproc-per-node=8 -m pytest benchmarks/test_ddp.py                           # 8 GPUs, NCCL

Each rank trains a small classifier on its part of a synthetic data set (``DistributedSampler``); each call of the
measured code is one pass over the rank's part, and energy() runs the same number of calls on every rank, so the
gradient all-reduces of DDP meet. The record's joules are the sum over ranks (each rank's GPU, each process's CPU
estimate, each node's RAPL counters once), its seconds the slowest rank's; the accuracy is the trained model's on
held-out data, the same on every rank since DDP keeps the replicas equal. Outside torchrun the test is skipped.
"""

from __future__ import annotations

import os

import pytest

from energy_bench.distributed.ranks import launched_by_torchrun

pytestmark = pytest.mark.skipif(
    not launched_by_torchrun(),
    reason="DDP benchmark: launch it with torchrun, e.g. torchrun --nproc-per-node=2 -m pytest benchmarks/test_ddp.py",
)

FEATURES = 64
CLASSES = 10
TRAIN_SAMPLES = 4096
TEST_SAMPLES = 1024
BATCH_SIZE = 64
SEED = 0


def make_data(torch, samples: int, generator):
    """Ten Gaussian clusters in 64 dimensions: learnable in a few passes, the same on every rank."""
    centers = torch.randn(CLASSES, FEATURES, generator=torch.Generator().manual_seed(SEED)) * 2
    labels = torch.randint(0, CLASSES, (samples,), generator=generator)
    return centers[labels] + torch.randn(samples, FEATURES, generator=generator), labels


@pytest.fixture(scope="module")
def ddp():
    """The rank's device and the process group (initialized by energy-bench under torchrun, or here)."""
    torch = pytest.importorskip("torch")
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group()
    if torch.cuda.is_available():  # one GPU per local rank; the default group then has NCCL for CUDA tensors
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return torch, dist, device


def test_ddp_train(ddp, energy, benchmark):
    torch, dist, device = ddp
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    torch.manual_seed(SEED)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    x, y = make_data(torch, TRAIN_SAMPLES, torch.Generator().manual_seed(SEED + 1))
    x_test, y_test = make_data(torch, TEST_SAMPLES, torch.Generator().manual_seed(SEED + 2))
    train = TensorDataset(x, y)
    sampler = DistributedSampler(train, shuffle=True, seed=SEED)
    loader = DataLoader(train, batch_size=BATCH_SIZE, sampler=sampler)
    net = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, CLASSES),
    ).to(device)
    model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    passes = {"done": 0}

    def train_one_pass():
        sampler.set_epoch(passes["done"])
        model.train()
        for inputs, labels in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(inputs.to(device)), labels.to(device))
            loss.backward()  # the gradients' all-reduce over ranks
            optimizer.step()
        passes["done"] += 1

    benchmark.group = "ddp"
    energy(train_one_pass, rounds=3, warmup_rounds=1)
    model.eval()
    with torch.no_grad():
        predicted = model.module(x_test.to(device)).argmax(dim=1).cpu()
    accuracy = float((predicted == y_test).float().mean())
    energy.record(
        accuracy=accuracy, world_size=dist.get_world_size(), passes=passes["done"], backend=dist.get_backend_config()
    )
    assert accuracy > 0.5
