"""Steganographic capacity reduction (the Mei & Stamp line of research).

Capacity: the largest n in 0..23 such that overwriting the n low-order mantissa bits of every float32 parameter
(weights and biases of every layer, norms included; buffers such as BatchNorm running statistics untouched) with
random bits keeps ``eval_fn`` accuracy >= baseline - tolerance. Those bits carry no information the model needs.

Search: binary search over n assuming accuracy falls monotonically with n (it does in practice). The found n is then
verified with a second, independent random draw; if that fails (non-monotone or lucky draw) n walks down until both
draws pass. Each draw uses a generator seeded from (draw, n), so results do not depend on the search order.

Reduction: the n low bits are zeroed (bit ops on the int32 view) and the model is trained in the narrowest format
that keeps the remaining bits and the weights' range: bfloat16 when n >= 16 (same exponent range as float32), float16
when n >= 13 and max |w| <= 65504 (weights below float16's normal minimum 2**-14 become subnormal or zero: accepted,
because the accuracy check below catches any harm), else float32 with zeroed bits. Each candidate format is checked
by rounding the weights to it (w.to(dtype).to(float32)) and running ``eval_fn``; a failing one gives way to the next
wider. If even float32 with n zeroed bits fails (zeroing is not random overwriting), n is lowered until it passes.
The returned model keeps float32 master weights holding exactly the values of the chosen format.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .registry import CompressionResult, register

MANTISSA_BITS = 23
FLOAT16_MAX = 65504.0
SEED = 0
_EPS = 1e-12  # accuracies are ratios of counts: absorb float noise in the tolerance comparison


def _low_mask(bits: int) -> int:
    return (1 << bits) - 1


def truncate_bits(t: torch.Tensor, bits: int) -> torch.Tensor:
    """A copy of float32 ``t`` with its ``bits`` low-order mantissa bits set to zero (sign and exponent kept)."""
    _check_bits(t, bits)
    return (t.detach().contiguous().view(torch.int32) & ~_low_mask(bits)).view(torch.float32)


def randomize_bits(t: torch.Tensor, bits: int, generator: torch.Generator) -> torch.Tensor:
    """A copy of float32 ``t`` whose ``bits`` low-order mantissa bits are random (from ``generator``, on the CPU)."""
    _check_bits(t, bits)
    noise = torch.randint(0, 1 << MANTISSA_BITS, t.shape, generator=generator, dtype=torch.int32).to(t.device)
    kept = t.detach().contiguous().view(torch.int32) & ~_low_mask(bits)
    return (kept | (noise & _low_mask(bits))).view(torch.float32)


def _check_bits(t: torch.Tensor, bits: int) -> None:
    if t.dtype != torch.float32:
        raise ValueError(f"mantissa bit operations need float32 tensors, got {t.dtype}")
    if not 0 <= bits <= MANTISSA_BITS:
        raise ValueError(f"bits must be in 0..{MANTISSA_BITS}, got {bits}")


def dtype_candidates(bits: int, max_abs: float) -> list[torch.dtype]:
    """Training formats to try, narrowest first, for weights with ``bits`` zeroed low bits and largest |w|."""
    candidates = []
    if bits >= 16:
        candidates.append(torch.bfloat16)  # 8 exponent bits like float32: range always fits
    if bits >= 13 and max_abs <= FLOAT16_MAX:
        candidates.append(torch.float16)
    candidates.append(torch.float32)
    return candidates


class _Weights:
    """The model's float parameters with their original values, for trying bit patterns and restoring."""

    def __init__(self, model: nn.Module):
        self.params = [p for p in model.parameters() if p.is_floating_point()]
        bad = {str(p.dtype) for p in self.params if p.dtype != torch.float32}
        if bad:
            raise ValueError(f"stego needs float32 parameters, the model has {', '.join(sorted(bad))}")
        self.original = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def set(self, values: Sequence[torch.Tensor]) -> None:
        for p, v in zip(self.params, values):
            p.copy_(v)

    def randomized(self, bits: int, draw: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(1_000_003 * (SEED + draw) + bits)
        return [randomize_bits(t, bits, generator) for t in self.original]

    def truncated(self, bits: int) -> list[torch.Tensor]:
        return [truncate_bits(t, bits) for t in self.original]


class _Search:
    """Counts evaluations and remembers accuracies of the random-overwrite trials."""

    def __init__(self, weights: _Weights, eval_fn: Callable[[nn.Module], float], model: nn.Module, tolerance: float):
        self.weights, self.eval_fn, self.model = weights, eval_fn, model
        self.evaluations = 0
        self.baseline = self.evaluate(weights.original)
        self.threshold = self.baseline - tolerance - _EPS
        self.trials: dict[str, float] = {}

    def evaluate(self, values: Sequence[torch.Tensor]) -> float:
        self.weights.set(values)
        self.evaluations += 1
        accuracy = float(self.eval_fn(self.model))
        if not 0.0 <= accuracy <= 1.0:
            raise ValueError(f"eval_fn must return an accuracy in 0..1, got {accuracy}")
        return accuracy

    def passes(self, bits: int, draw: int = 0) -> bool:
        if bits == 0:
            return True  # nothing overwritten: the baseline itself
        key = f"{bits}" if draw == 0 else f"{bits}/draw{draw}"
        if key not in self.trials:
            self.trials[key] = self.evaluate(self.weights.randomized(bits, draw))
        return self.trials[key] >= self.threshold

    def capacity(self) -> int:
        low, high = 0, MANTISSA_BITS + 1  # passes(low) holds; high is the first n not known to pass
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if self.passes(mid) else (low, mid)
        while low > 0 and not self.passes(low, draw=1):  # verify with an independent draw; walk down if it fails
            low -= 1
            while low > 0 and not self.passes(low):
                low -= 1
        return low


def _choose_format(weights: _Weights, bits: int, search: _Search | None, accept_float32: bool):
    """Truncate to ``bits`` and pick the narrowest passing format: (values, dtype, accuracy or None), or None."""
    truncated = weights.truncated(bits)
    max_abs = max((float(t.abs().max()) for t in truncated if t.numel()), default=0.0)
    for dtype in dtype_candidates(bits, max_abs):
        values = [t.to(dtype).to(torch.float32) for t in truncated]
        if search is None:
            return values, dtype, None  # nothing to check against: the rules alone decide
        accuracy = search.evaluate(values)
        if accuracy >= search.threshold or (dtype == torch.float32 and accept_float32):
            return values, dtype, accuracy
    return None


@register("stego")
@torch.no_grad()
def stego(model: nn.Module, params, *, eval_fn=None, example_input=None) -> CompressionResult:
    forced = params.get("bits")
    tolerance = params.get("tolerance", 0.01)  # with bits=N it only judges the candidate formats
    if forced is None and eval_fn is None:
        raise ValueError("stego needs eval_fn(model) -> accuracy to search the capacity (or give stego:bits=N)")
    weights = _Weights(model)
    search = _Search(weights, eval_fn, model, tolerance) if eval_fn is not None else None
    capacity = forced if forced is not None else search.capacity()

    bits = capacity
    # A user-given n is kept (float32 if no narrower format passes); a searched one is lowered until zeroing passes.
    while (chosen := _choose_format(weights, bits, search, accept_float32=forced is not None or bits == 0)) is None:
        bits -= 1
    values, dtype, accuracy = chosen
    weights.set(values)

    dtype_name = str(dtype).replace("torch.", "")
    details = {
        "capacity_bits": capacity,
        "truncated_bits": bits,
        "search": "given (bits=N)" if forced is not None else "binary search 0..23, verified with a second draw",
        "tolerance": tolerance,
        "baseline_accuracy": search.baseline if search else None,
        "accuracy": accuracy,
        "dtype": dtype_name,
        "dtype_checked": search is not None,
        "training": "fp32" if dtype == torch.float32 else f"autocast {dtype_name}, fp32 master weights",
        "evaluations": search.evaluations if search else 0,
        "trials": dict(search.trials) if search else {},
        "parameters_modified": sum(p.numel() for p in weights.params),
        "seed": SEED,
    }
    return CompressionResult(model=model, details=details, dtype=dtype)
