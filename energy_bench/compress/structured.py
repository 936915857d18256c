"""Structured pruning: whole channels physically removed with torch-pruning's dependency graph.

``amount`` is torch-pruning's per-layer ``pruning_ratio``: the fraction of output channels (features) removed from
every prunable Conv/Linear layer, ranked by L1 magnitude (``MagnitudeImportance(p=1)``), with coupled layers
(residual additions, concatenations, norms) pruned consistently. The final classifier keeps its outputs, so the
model's output shape is unchanged. Vision transformers: only the MLP hidden features of each encoder block are
pruned; the embedding width, attention heads and patch embedding are kept, because they are tied to the class token,
position embeddings and nn.MultiheadAttention's packed projections.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .registry import CompressionResult, register
from .stats import count_parameters, eval_mode, multiply_adds


def _output_shape(model: nn.Module, example_input: torch.Tensor) -> tuple:
    with eval_mode(model), torch.no_grad():
        return tuple(model(example_input).shape)


def classifier(model: nn.Module, example_input: torch.Tensor) -> nn.Module:
    """The Conv/Linear layer producing the model's output: the last one run whose width is the output's."""
    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: order.append(mod))
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d))
    ]
    try:
        width = _output_shape(model, example_input)[1]
    finally:
        for hook in hooks:
            hook.remove()
    last = [m for m in order if getattr(m, "out_features", getattr(m, "out_channels", None)) == width]
    if not last:
        raise ValueError("prune-structured: cannot find the classifier layer producing the model's output")
    return last[-1]


def _transformer_frozen_layers(model: nn.Module) -> list[nn.Module]:
    """In a torchvision vision transformer, every layer but the first Linear of each MLPBlock (its hidden features)."""
    mlp_inputs = set()
    for module in model.modules():
        if isinstance(module, nn.Sequential) and module.__class__.__name__ == "MLPBlock":
            mlp_inputs.add(module[0])
    return [
        m
        for m in model.modules()
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.MultiheadAttention)) and m not in mlp_inputs
    ]


def _is_transformer(model: nn.Module) -> bool:
    return any(isinstance(m, nn.MultiheadAttention) for m in model.modules())


@register("prune-structured")
def prune_structured(model: nn.Module, params, *, eval_fn=None, example_input=None) -> CompressionResult:
    import torch_pruning as tp

    if example_input is None:
        raise ValueError("prune-structured needs example_input, a batch (N, 3, H, W), to trace the dependency graph")
    amount = params["amount"]
    macs_before, params_before = multiply_adds(model, example_input), count_parameters(model)
    shape = _output_shape(model, example_input)
    ignored = [classifier(model, example_input)]  # keeps the output shape
    transformer = _is_transformer(model)
    if transformer:
        ignored += _transformer_frozen_layers(model)
    with eval_mode(model), warnings.catch_warnings():
        # ViT's class token and position embeddings: their width (the embedding) is never pruned here.
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        pruner = tp.pruner.MagnitudePruner(
            model,
            example_input,
            importance=tp.importance.MagnitudeImportance(p=1),
            pruning_ratio=amount,
            ignored_layers=ignored,
        )
        pruner.step()
    pruned_shape = _output_shape(model, example_input)
    if pruned_shape != shape:
        raise RuntimeError(f"prune-structured changed the output shape {shape} -> {pruned_shape}")
    details = {
        "amount": amount,
        "importance": "L1 magnitude per channel (torch-pruning MagnitudeImportance p=1), per-layer ratio",
        "scope": "MLP hidden features only (transformer)" if transformer else "all Conv/Linear output channels",
        "torch_pruning": tp.__version__,
        "parameters_before": params_before,
        "parameters": count_parameters(model),
        "multiply_adds_before": macs_before,
        "multiply_adds": multiply_adds(model, example_input),
    }
    return CompressionResult(model=model, details=details)
