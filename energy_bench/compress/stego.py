"""Steganographic capacity reduction (the Mei & Stamp line of research).

Capacity: the largest n in 0..23 such that overwriting the n low-order mantissa bits of every float32 parameter
(weights and biases of every layer, norms included; buffers such as BatchNorm running statistics untouched) with
random bits keeps ``eval_fn`` accuracy >= baseline - tolerance. Those bits carry no information the model needs.

Search: binary search over n assuming accuracy falls monotonically with n (it does in practice). The found n is then
verified with a second, independent random draw; if that fails (non-monotone or lucky draw) n walks down until both
draws pass. Each draw uses a generator seeded from (draw, n), so results do not depend on the search order.

Reduction: the n low bits are zeroed (bit ops on the int32 view) and the model is trained in the narrowest format
the device runs natively (``formats``, given by the caller: bfloat16 on CPUs with avx512_bf16/amx_bf16, float16 on
CPUs with avx512_fp16/amx_fp16, both on CUDA) that the accuracy check accepts, else float32 with the n bits zeroed.
A device without a native 16-bit format (an AVX2-only CPU) always gets float32: emulated formats run slower.
Candidates, narrowest first: bfloat16 (7 mantissa bits, float32's exponent range), then float16 (10 mantissa bits;
only when max |w| <= 65504; weights below its normal minimum 2**-14 become subnormal or zero: accepted, because the
check catches any harm). With an accuracy check (``eval_fn``), every native format is tried whatever n is: rounding
to it may drop more bits than n, and the check is what makes that safe. Without one (``bits=N`` and no
``eval_fn``), only formats that hold the truncated weights exactly: bfloat16 when n >= 16, float16 when n >= 13.
Each candidate is checked by rounding the weights to it (w.to(dtype).to(float32)) and running ``eval_fn``; a failing
one gives way to the next. If even float32 with n zeroed bits fails (zeroing is not random overwriting), n is
lowered until it passes. The returned model keeps float32 master weights holding exactly the values of the chosen
format.
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


#: the 16-bit formats stego can train in, narrowest mantissa first
NARROW_FORMATS = (torch.bfloat16, torch.float16)
#: low-order bits a format drops from float32's 23-bit mantissa (what it holds exactly after truncation)
DROPPED_BITS = {torch.bfloat16: 16, torch.float16: 13}


def dtype_candidates(
    bits: int, max_abs: float, formats: Sequence[torch.dtype] | None = None, checked: bool = False
) -> list[torch.dtype]:
    """Training formats to try, narrowest first, for weights with ``bits`` zeroed low bits and largest |w|.

    ``formats``: the 16-bit formats the device runs natively (None: both). ``checked``: an accuracy check will judge
    each candidate, so a format is tried even when rounding to it drops more than ``bits`` bits."""
    native = NARROW_FORMATS if formats is None else tuple(formats)
    candidates = []
    for dtype in NARROW_FORMATS:
        if dtype not in native:
            continue
        if dtype == torch.float16 and max_abs > FLOAT16_MAX:
            continue  # overflow to inf: no check needed to reject it
        if checked or bits >= DROPPED_BITS[dtype]:
            candidates.append(dtype)
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


def _choose_format(
    weights: _Weights, bits: int, search: _Search | None, accept_float32: bool, formats: Sequence[torch.dtype] | None
):
    """Truncate to ``bits`` and pick the narrowest passing format: (values, dtype, accuracy or None), or None."""
    truncated = weights.truncated(bits)
    max_abs = max((float(t.abs().max()) for t in truncated if t.numel()), default=0.0)
    for dtype in dtype_candidates(bits, max_abs, formats, checked=search is not None):
        values = [t.to(dtype).to(torch.float32) for t in truncated]
        if search is None:
            return values, dtype, None  # nothing to check against: the rules alone decide
        accuracy = search.evaluate(values)
        if accuracy >= search.threshold or (dtype == torch.float32 and accept_float32):
            return values, dtype, accuracy
    return None


@register("stego")
@torch.no_grad()
def stego(model: nn.Module, params, *, eval_fn=None, example_input=None, formats=None) -> CompressionResult:
    forced = params.get("bits")
    tolerance = params.get("tolerance", 0.01)  # with bits=N it only judges the candidate formats
    if forced is None and eval_fn is None:
        raise ValueError("stego needs eval_fn(model) -> accuracy to search the capacity (or give stego:bits=N)")
    weights = _Weights(model)
    search = _Search(weights, eval_fn, model, tolerance) if eval_fn is not None else None
    capacity = forced if forced is not None else search.capacity()

    bits = capacity
    # A user-given n is kept (float32 if no narrower format passes); a searched one is lowered until zeroing passes.
    accept = forced is not None
    while (chosen := _choose_format(weights, bits, search, accept or bits == 0, formats)) is None:
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
        "native_formats": _format_names(formats),
        "format_note": _format_note(dtype, bits, formats),
        "evaluations": search.evaluations if search else 0,
        "trials": dict(search.trials) if search else {},
        "parameters_modified": sum(p.numel() for p in weights.params),
        "seed": SEED,
    }
    return CompressionResult(model=model, details=details, dtype=dtype)


def _format_names(formats: Sequence[torch.dtype] | None) -> list[str] | str:
    if formats is None:
        return "not given: bfloat16 and float16 assumed native"
    return [str(f).replace("torch.", "") for f in formats]


def _format_note(dtype: torch.dtype, bits: int, formats: Sequence[torch.dtype] | None) -> str:
    """Why this format, in words for the record."""
    if dtype != torch.float32:
        dropped = DROPPED_BITS[dtype]
        how = "exactly" if bits >= dropped else f"rounded ({dropped} low bits dropped), accepted by the accuracy check"
        return f"{str(dtype).replace('torch.', '')} is native here and holds the weights {how}"
    if formats is not None and not formats:
        return f"no native 16-bit format on this device: float32 with {bits} zeroed low bits"
    return f"no native 16-bit format passed: float32 with {bits} zeroed low bits"
