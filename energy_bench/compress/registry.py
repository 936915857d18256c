"""Compressor registry (name -> function), the result type and ``apply``.

Like torchvision's model registry: built-in compressors register themselves with ``@register`` when their module
is imported. Those modules need torch, so they are imported lazily, on first use, keeping ``import
energy_bench.compress`` cheap.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .specs import COMPRESSORS, SCHEMAS, Schema, Spec, add_schema, parse_spec, valid_specs_help

EvalFn = Callable[[Any], float]


@dataclass
class CompressionResult:
    """What a compressor produced.

    ``model``: the compressed nn.Module (a deep copy: the caller's model is never modified).
    ``details``: plain-JSON dict of what was done. ``dtype``: the torch dtype to train in (torch.float32 unless the
    stego compressor chose bfloat16/float16; train with autocast and fp32 master weights). ``spec``: the parsed spec.
    """

    model: Any
    details: dict[str, Any] = field(default_factory=dict)
    dtype: Any = None
    spec: Spec | None = None


# A compressor: fn(model, params, *, eval_fn, example_input[, formats]) -> CompressionResult, modifying `model` in place
# (apply hands it a private copy) or returning a new module.
Compressor = Callable[..., CompressionResult]

_REGISTRY: dict[str, Compressor] = {}
_BUILTIN_MODULES = {
    "baseline": "energy_bench.compress.baseline",
    "stego": "energy_bench.compress.stego",
    "prune": "energy_bench.compress.prune",
    "prune-structured": "energy_bench.compress.structured",
    "lowrank": "energy_bench.compress.lowrank",
}


def register(name: str, *, schema: Schema | None = None) -> Callable[[Compressor], Compressor]:
    """Decorator registering ``fn`` as compressor ``name``; a new name needs the ``schema`` of its spec knobs."""

    def decorator(fn: Compressor) -> Compressor:
        if schema is not None or name not in SCHEMAS:
            add_schema(name, schema or Schema())
        _REGISTRY[name] = fn
        return fn

    return decorator


def get_compressor(name: str) -> Compressor:
    if name not in _REGISTRY and name in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[name])
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown compressor {name!r}; valid compressors: {valid_specs_help()}") from None


def list_compressors() -> tuple[str, ...]:
    """Built-in compressors in study order, then user-registered ones."""
    return COMPRESSORS + tuple(sorted(n for n in _REGISTRY if n not in COMPRESSORS))


def apply(
    model: Any, spec: str | Spec, *, eval_fn: EvalFn | None = None, example_input: Any = None, formats: Any = None
) -> CompressionResult:
    """Compress a deep copy of ``model`` as ``spec`` says (e.g. ``"prune:amount=0.3"``).

    ``eval_fn(model) -> accuracy in 0..1`` is needed by ``stego`` (unless ``bits=N``); ``example_input``, a batch
    (N, 3, H, W) on the model's device, by ``prune-structured`` and for the before/after multiply-add counts.
    ``formats``: the 16-bit torch dtypes the target device runs natively (e.g. ``energy_bench.study.train.
    native_formats(device)``), for compressors that choose a training format (stego); None = any. Passed only to
    compressors whose signature has a ``formats`` keyword.
    """
    import torch

    parsed = spec if isinstance(spec, Spec) else parse_spec(spec)
    compressor = get_compressor(parsed.name)
    extra = {"formats": formats} if _takes(compressor, "formats") else {}
    result = compressor(
        copy.deepcopy(model), dict(parsed.params), eval_fn=eval_fn, example_input=example_input, **extra
    )
    return replace(result, spec=parsed, dtype=result.dtype if result.dtype is not None else torch.float32)


def _takes(fn: Callable[..., Any], keyword: str) -> bool:
    """Whether ``fn`` accepts ``keyword`` (by name or through ``**kwargs``): older compressors do not."""
    parameters = inspect.signature(fn).parameters.values()
    return any(p.name == keyword or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
