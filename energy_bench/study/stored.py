"""Compressed models stored as data: a state dict, the recipe that rebuilds their structure, and plain JSON.

A compressed model is saved as ``{"format": 1, "meta": <JSON text>, "state": <state dict>}`` and read back with
``torch.load(weights_only=True)``: tensors, strings and numbers, never a pickled module, so a file planted in the
cache cannot run code. Its structure is rebuilt from the uncompressed model it came from plus a recipe saying how it
differs (``describe``):

- ``factorized``: layers replaced by a low-rank pair (lowrank): layer name -> rank;
- ``attributes``: plain attributes that changed (structured pruning: channels, features, groups, norm widths):
  layer name -> {attribute: value}; parameters and buffers then take the shapes of the state dict.

Compressors that keep the structure (stego, prune) have an empty recipe. A change that cannot be described so
(another kind of layer swapped in) is not stored: the compression is redone next time. Before a model is stored it
is rebuilt from what would be stored, and must give the same outputs on the example input.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from energy_bench.errors import EnergyBenchError

from . import cache

FORMAT = 1
#: training formats a stored model may ask for (stego's choices)
DTYPES = ("float32", "bfloat16", "float16")
#: attributes that say nothing about structure
_IGNORED_ATTRIBUTES = frozenset({"training"})


class Unstorable(EnergyBenchError):
    """A compressed model whose structure cannot be described by a recipe."""


@dataclass
class Stored:
    model: Any
    details: dict[str, Any]
    dtype: Any
    seconds: float


# ---------------------------------------------------------------------------- the recipe


def _is_plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def plain_attributes(module: Any) -> dict[str, Any]:
    """A module's public attributes that are numbers, strings or tuples of them (its hyperparameters)."""
    return {
        key: value
        for key, value in vars(module).items()
        if not key.startswith("_") and key not in _IGNORED_ATTRIBUTES and _is_plain(value)
    }


def _inside(name: str, parent: str) -> bool:
    return name != parent and (parent == "" or name.startswith(parent + "."))


def _factorized_rank(old: Any, new: Any) -> int | None:
    """The rank when ``new`` is the low-rank pair replacing the Linear/Conv2d ``old``, else None."""
    from torch import nn

    if not isinstance(old, (nn.Linear, nn.Conv2d)) or not isinstance(new, nn.Sequential) or len(new) != 2:
        return None
    if not all(type(part) is type(old) for part in new):
        return None
    return int(new[0].out_features if isinstance(old, nn.Linear) else new[0].out_channels)


def describe(base: Any, model: Any) -> dict[str, Any]:
    """How ``model`` differs in structure from ``base`` (plain JSON); Unstorable when no recipe can say it."""
    old_modules = dict(base.named_modules())
    factorized: dict[str, int] = {}
    attributes: dict[str, dict[str, Any]] = {}
    seen = set()
    for name, module in model.named_modules():
        if any(_inside(name, parent) for parent in factorized):
            continue
        old = old_modules.get(name)
        if old is None:
            raise Unstorable(f"layer {name!r} is not in the uncompressed model")
        seen.add(name)
        if type(module) is not type(old):
            rank = _factorized_rank(old, module)
            if rank is None:
                raise Unstorable(f"layer {name!r}: {type(old).__name__} became {type(module).__name__}")
            factorized[name] = rank
            continue
        before = plain_attributes(old)
        changed = {k: v for k, v in plain_attributes(module).items() if k not in before or before[k] != v}
        if changed:
            attributes[name] = json.loads(json.dumps(changed))
    gone = [n for n in old_modules if n not in seen and not any(_inside(n, p) for p in factorized)]
    if gone:
        raise Unstorable(f"layer {gone[0]!r} was removed")
    return {"factorized": factorized, "attributes": attributes}


def rebuild(base: Any, recipe: dict[str, Any], state: dict[str, Any]) -> Any:
    """A copy of ``base`` changed as ``recipe`` says, holding ``state`` (ValueError/KeyError/RuntimeError if not)."""
    from energy_bench.compress.lowrank import factorized_shell

    model = copy.deepcopy(base)
    for name, rank in dict(recipe["factorized"]).items():
        shell = factorized_shell(model.get_submodule(name), int(rank))
        if name:
            model.set_submodule(name, shell)
        else:
            model = shell
    for name, changes in dict(recipe["attributes"]).items():
        module = model.get_submodule(name)
        allowed = plain_attributes(module)
        for key, value in dict(changes).items():
            if key not in allowed or not _is_plain(value):
                raise ValueError(f"layer {name!r} has no plain attribute {key!r}")
            setattr(module, key, tuple(value) if isinstance(allowed[key], tuple) else value)
    _reshape_to(model, state)
    model.load_state_dict(state)
    return model


def _reshape_to(model: Any, state: dict[str, Any]) -> None:
    """Give every parameter and buffer the shape it has in ``state`` (structured pruning shrinks them)."""
    import torch

    for key, tensor in state.items():
        owner_name, _, attr = key.rpartition(".")
        owner = model.get_submodule(owner_name)
        is_param = attr in owner._parameters
        current = owner._parameters.get(attr) if is_param else owner._buffers.get(attr)
        if current is None or tuple(current.shape) == tuple(tensor.shape):
            continue
        fresh = torch.empty(tuple(tensor.shape), dtype=current.dtype, device=current.device)
        if is_param:
            owner._parameters[attr] = torch.nn.Parameter(fresh, requires_grad=current.requires_grad)
        else:
            owner._buffers[attr] = fresh


# ---------------------------------------------------------------------------- files


def dtype_name(dtype: Any) -> str:
    return str(dtype).replace("torch.", "")


def parse_dtype(name: Any) -> Any:
    import torch

    if name not in DTYPES:
        raise ValueError(f"unknown training dtype {name!r}")
    return getattr(torch, name)


def _same_outputs(a: Any, b: Any, example: Any) -> bool:
    import torch

    from energy_bench.compress.stats import eval_mode

    with torch.no_grad(), eval_mode(a), eval_mode(b):
        out_a, out_b = a(example), b(example)
    if not isinstance(out_a, torch.Tensor) or not isinstance(out_b, torch.Tensor):
        return False  # a model returning several outputs: not stored
    scale = float(out_a.abs().max()) if out_a.numel() else 0.0
    return out_a.shape == out_b.shape and torch.allclose(out_a, out_b, rtol=1e-4, atol=1e-5 * max(scale, 1.0))


def save(path: Path, base: Any, result: Any, seconds: float, ident: dict[str, Any], example: Any) -> bool:
    """Store ``result`` (a CompressionResult of ``base``) at ``path``; False when it is not stored."""
    import torch

    try:
        recipe = describe(base, result.model)
    except Unstorable:
        return False  # a user compressor that swaps in other layers: redone each session
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    try:
        reproduced = _same_outputs(result.model, rebuild(base, recipe, state), example)
    except (RuntimeError, ValueError, KeyError, AttributeError, TypeError):  # a change the recipe misses
        reproduced = False
    if not reproduced:
        cache.warn(f"{ident.get('spec')} not cached: its stored form does not reproduce the compressed model")
        return False
    meta = {
        "ident": ident,
        "recipe": recipe,
        "details": result.details,
        "dtype": dtype_name(result.dtype),
        "seconds": seconds,
    }
    try:
        payload = {"format": FORMAT, "meta": json.dumps(meta), "state": state}
    except (TypeError, ValueError):  # details that are not plain JSON (a user compressor's)
        return False
    return cache.write_atomic(path, lambda tmp: torch.save(payload, tmp), f"compressed model {path.name}")


def load(path: Path, base: Any, ident: dict[str, Any]) -> Stored | None:
    """The model stored at ``path``, rebuilt on ``base``; None if absent or unusable (then removed, with a warning)."""
    import torch

    def read(file: Path) -> Stored:
        payload = torch.load(file, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT or not isinstance(payload.get("meta"), str):
            raise ValueError("not a compressed model of this format")
        meta = json.loads(payload["meta"])
        if meta.get("ident") != ident:
            raise ValueError("made from another model, data set or version")
        state = payload.get("state")
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError("no state dict")
        model = rebuild(base, meta["recipe"], state)
        return Stored(model, dict(meta["details"]), parse_dtype(meta["dtype"]), float(meta["seconds"]))

    return cache.read_or_discard(path, read, "compressed model")
