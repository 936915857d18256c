"""Size and work of a model: parameters, nonzeros, multiply-adds per sample, weight bytes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_nonzero(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(p.detach())) for p in model.parameters())


def weight_bytes(model: nn.Module, dtype: torch.dtype | None = None) -> int:
    """Bytes the parameters take stored as ``dtype`` (default: each parameter's own dtype)."""
    return sum(p.numel() * (dtype.itemsize if dtype is not None else p.element_size()) for p in model.parameters())


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for a forward pass, restoring each module's own training flag afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def multiply_adds(model: nn.Module, example_input: torch.Tensor) -> int:
    """Multiply-adds of one forward pass per sample, counted by torch.utils.flop_counter (MACs = FLOPs / 2)."""
    counter = FlopCounterMode(display=False)
    with eval_mode(model), torch.no_grad(), counter:
        model(example_input)
    return round(counter.get_total_flops() / 2 / example_input.shape[0])
