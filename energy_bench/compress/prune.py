"""Unstructured L1-magnitude pruning (torch.nn.utils.prune), made permanent.

Per layer: each Conv2d and Linear weight loses the ``amount`` fraction of its entries with the smallest |w|
(``l1_unstructured``'s mask and rounding), then ``prune.remove`` bakes the zeros in. Biases, norms and
attention projections held as raw parameters are left alone. The tensors stay dense, so the model does the same
work: this is what the study most likely did, and why it saved no energy.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

from .registry import CompressionResult, register
from .stats import count_nonzero, count_parameters

PRUNABLE = (nn.Conv2d, nn.Linear)


def l1_mask(weight: torch.Tensor, amount: float) -> torch.Tensor:
    """The mask ``prune.l1_unstructured`` makes: zero for the round(amount * n) entries of smallest |w|.

    Found with kthvalue instead of its topk, which sorts far less on layers with ~100M entries (vgg16's first
    Linear). Ties at the threshold are pruned first-come until exactly that many are zero.
    """
    magnitude = weight.detach().abs().flatten()
    k = round(amount * magnitude.numel())  # torch.nn.utils.prune's rounding
    mask = torch.ones_like(magnitude)
    if k > 0:
        threshold = magnitude.kthvalue(k).values
        mask[magnitude < threshold] = 0
        ties = (magnitude == threshold).nonzero().flatten()
        mask[ties[: k - int((magnitude < threshold).sum())]] = 0
    return mask.view_as(weight)


@register("prune")
def prune_unstructured(model: nn.Module, params, *, eval_fn=None, example_input=None) -> CompressionResult:
    amount = params["amount"]
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE)]
    pruned = total = 0
    for _, module in layers:
        prune.custom_from_mask(module, name="weight", mask=l1_mask(module.weight, amount))
        prune.remove(module, "weight")
        weight = module.weight.detach()
        total += weight.numel()
        pruned += weight.numel() - int(weight.count_nonzero())
    details = {
        "amount": amount,
        "scope": "per-layer l1_unstructured on Conv2d and Linear weights",
        "layers_pruned": len(layers),
        "sparsity": pruned / total if total else 0.0,
        "parameters": count_parameters(model),
        "nonzero_parameters": count_nonzero(model),
    }
    return CompressionResult(model=model, details=details)
