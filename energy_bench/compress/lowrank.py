"""Low-rank factorization of Linear and Conv2d layers by truncated SVD.

A weight W (out x in, or out x in*k*k for a conv) becomes B @ A of rank r: Linear -> Linear(in, r, no bias) then
Linear(r, out, bias); Conv2d (groups == 1) -> a k x k conv in -> r (same stride, padding, dilation; no bias) then a
1 x 1 conv r -> out (bias). Both cost r*(in + out) multiply-adds per output position instead of out*in, so a layer
is left alone unless r*(m + n) < m*n. Linears inside nn.MultiheadAttention are left alone (it reads their weights
directly).

r: ``rank`` = ceil(fraction x full rank), at least 1, where full rank = min(m, n); ``energy`` = the fewest singular
values whose squares sum to >= that fraction of the total (squared Frobenius norm).

The top-r singular subspace comes from the eigendecomposition of the Gram matrix of W's smaller side (W Wᵀ or WᵀW):
exact in exact arithmetic, and far cheaper than a full SVD of a very wide matrix (vgg16's 4096 x 25088
classifier: the eigenproblem is 4096 x 4096). Matrices with a side <= 1024 use float64 for it; larger ones
float32. The factors are balanced (each carries the square root of the singular values).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .registry import CompressionResult, register
from .stats import count_parameters, multiply_adds

PRECISE_SIDE = 1024  # up to this side the Gram eigenproblem runs in float64


def target_rank(full: int, fraction: float) -> int:
    return max(1, min(full, math.ceil(fraction * full - 1e-9)))


def cuts_work(rank: int, m: int, n: int) -> bool:
    """Whether factors m x r and r x n take fewer multiply-adds (and parameters) than the m x n matrix."""
    return rank * (m + n) < m * n


def spectrum(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Squared singular values (descending) and the matching singular vectors of the smaller side.

    Returns (energies, vectors, left): left=True when vectors are W's left singular vectors (m <= n).
    """
    m, n = weight.shape
    left = m <= n
    dtype = torch.float64 if min(m, n) <= PRECISE_SIDE else torch.float32
    w = weight.detach().to(dtype)
    gram = w @ w.T if left else w.T @ w
    energies, vectors = torch.linalg.eigh(gram)
    return energies.flip(0).clamp_min(0), vectors.flip(1), left


def rank_for_energy(energies: torch.Tensor, fraction: float) -> int:
    total = float(energies.sum())
    if total == 0:
        return 1
    cumulative = torch.cumsum(energies, 0) / total
    return int(torch.searchsorted(cumulative, torch.tensor(fraction - 1e-9, dtype=cumulative.dtype))) + 1


def factor(weight: torch.Tensor, energies: torch.Tensor, vectors: torch.Tensor, left: bool, rank: int):
    """Balanced factors (B: m x r, A: r x n) with B @ A the best rank-r approximation of ``weight``."""
    w = weight.detach().to(vectors.dtype)
    basis = vectors[:, :rank]
    root = energies[:rank].sqrt().clamp_min(torch.finfo(vectors.dtype).tiny).sqrt()  # sqrt of singular values
    if left:  # W ≈ U_r (U_rᵀ W); U_rᵀ W has row norms s
        b, a = basis * root, (basis.T @ w) / root[:, None]
    else:  # W ≈ (W V_r) V_rᵀ; W V_r has column norms s
        b, a = (w @ basis) / root, basis.T * root[:, None]
    return b.to(weight.dtype), a.to(weight.dtype)


def _as_matrix(module: nn.Module) -> torch.Tensor:
    return module.weight.reshape(module.weight.shape[0], -1)


def _factorized(module: nn.Module, b: torch.Tensor, a: torch.Tensor) -> nn.Sequential:
    rank = a.shape[0]
    has_bias = module.bias is not None
    kw = dict(device=module.weight.device, dtype=module.weight.dtype)
    if isinstance(module, nn.Linear):
        first = nn.Linear(module.in_features, rank, bias=False, **kw)
        second = nn.Linear(rank, module.out_features, bias=has_bias, **kw)
        first.weight.data.copy_(a)
        second.weight.data.copy_(b)
    else:
        first = nn.Conv2d(
            module.in_channels,
            rank,
            module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            bias=False,
            padding_mode=module.padding_mode,
            **kw,
        )
        second = nn.Conv2d(rank, module.out_channels, 1, bias=has_bias, **kw)
        first.weight.data.copy_(a.reshape(first.weight.shape))
        second.weight.data.copy_(b.reshape(second.weight.shape))
    if has_bias:
        second.bias.data.copy_(module.bias.detach())
    return nn.Sequential(first, second)


def factorized_shell(module: nn.Module, rank: int) -> nn.Sequential:
    """The rank-``rank`` pair that would replace ``module``, with zero factors: a frame to load saved factors into."""
    m, n = _as_matrix(module).shape
    kw = dict(device=module.weight.device, dtype=module.weight.dtype)
    return _factorized(module, torch.zeros(m, rank, **kw), torch.zeros(rank, n, **kw))


def candidates(model: nn.Module) -> dict[str, nn.Module]:
    """Linear and groups==1 Conv2d layers that can be replaced (not those nn.MultiheadAttention reads directly)."""
    inside_attention = {
        id(child) for m in model.modules() if isinstance(m, nn.MultiheadAttention) for child in m.modules()
    }
    return {
        name: m
        for name, m in model.named_modules()
        if id(m) not in inside_attention and (isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1))
    }


def _replace(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` in place of submodule ``name``; returns the model (``new`` itself when the model is the layer)."""
    if not name:
        return new
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return model


@register("lowrank")
@torch.no_grad()
def lowrank(model: nn.Module, params, *, eval_fn=None, example_input=None) -> CompressionResult:
    fraction: float | None = params.get("rank")
    energy: float | None = params.get("energy")
    params_before = count_parameters(model)
    macs_before = multiply_adds(model, example_input) if example_input is not None else None
    ranks: dict[str, list] = {}
    left_alone = 0
    for name, module in candidates(model).items():
        matrix = _as_matrix(module)
        m, n = matrix.shape
        full = min(m, n)
        if fraction is not None and not cuts_work(target_rank(full, fraction), m, n):
            left_alone += 1  # decided before paying for the decomposition
            continue
        energies, vectors, left = spectrum(matrix)
        rank = target_rank(full, fraction) if fraction is not None else rank_for_energy(energies, energy)
        if not cuts_work(rank, m, n):
            left_alone += 1
            continue
        b, a = factor(matrix, energies, vectors, left, rank)
        model = _replace(model, name, _factorized(module, b, a))
        ranks[name] = [rank, full]
    details = {
        "rank" if fraction is not None else "energy": fraction if fraction is not None else energy,
        "layers_factorized": len(ranks),
        "layers_left_alone": left_alone,
        "ranks": ranks,  # layer -> [r, full rank]
        "parameters_before": params_before,
        "parameters": count_parameters(model),
        "multiply_adds_before": macs_before,
        "multiply_adds": multiply_adds(model, example_input) if example_input is not None else None,
    }
    return CompressionResult(model=model, details=details)
