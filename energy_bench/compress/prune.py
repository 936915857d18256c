"""Unstructured L1-magnitude pruning (torch.nn.utils.prune), made permanent.

Per layer: each Conv2d and Linear weight loses the ``amount`` fraction of its entries with the smallest |w|
(``l1_unstructured``, rounded as torch rounds), then ``prune.remove`` bakes the zeros in. Biases, norms and
attention projections held as raw parameters are left alone. The tensors stay dense, so the model does the same
work: this is what the study most likely did, and why it saved no energy.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils import prune

from .registry import CompressionResult, register
from .stats import count_nonzero, count_parameters

PRUNABLE = (nn.Conv2d, nn.Linear)


@register("prune")
def prune_unstructured(model: nn.Module, params, *, eval_fn=None, example_input=None) -> CompressionResult:
    amount = params["amount"]
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, PRUNABLE)]
    pruned = total = 0
    for _, module in layers:
        prune.l1_unstructured(module, name="weight", amount=amount)
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
