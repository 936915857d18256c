"""Where a study model's starting weights come from: ``--energy-weights=pretrained|self|random|PATH``.

- ``pretrained``: torchvision's weights API (``DEFAULT`` weights), read from ``torch.hub.get_dir()/checkpoints``;
  downloaded only when missing and online (never when ``ENERGY_BENCH_OFFLINE=1``). Missing offline raises
  ``WeightsUnavailable`` (the fixtures turn it into a skip) naming the file and how to get it.
- ``self``: pretrained from random initialization on the data set's train split, once; the state dict is cached
  under ``cache_dir()`` keyed by model, data set, image size, seed and pretraining recipe.
- ``random``: no pretraining.
- ``PATH``: a state-dict file, or a folder of ``<model>.pt``/``.pth`` files. The file may hold the data set's head
  or another one (e.g. ImageNet's 1000 classes: the head is then replaced); anything else that does not fit is a
  ``WeightsError`` naming the file and the first mismatch.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from energy_bench.errors import EnergyBenchError

from . import zoo

SOURCES = ("pretrained", "self", "random")


class WeightsError(EnergyBenchError):
    """A weights file that cannot be used (missing, unreadable, wrong keys or shapes)."""


class WeightsUnavailable(EnergyBenchError):
    """Pretrained weights are not cached and cannot be downloaded (offline): skip, don't fail."""


def check_option(value: str | None) -> str | None:
    """Validate ``--energy-weights`` cheaply (no torch); ValueError when a PATH does not exist."""
    if value in (None, "") or value in SOURCES:
        return value or None
    if not os.path.exists(os.path.expanduser(value)):
        raise ValueError(f"--energy-weights={value}: not one of {', '.join(SOURCES)} and no such file or folder")
    return value


def cache_dir() -> Path:
    """$ENERGY_BENCH_CACHE, else $XDG_CACHE_HOME/energy-bench, else ~/.cache/energy-bench."""
    if os.environ.get("ENERGY_BENCH_CACHE"):
        return Path(os.environ["ENERGY_BENCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "energy-bench"


# --- pretrained: torchvision's weights API ----------------------------------------------------------------------


def default_weights(name: str) -> Any:
    import torchvision

    zoo.get_spec(name)
    return torchvision.models.get_model_weights(name).DEFAULT


def cached_file(weights: Any) -> Path:
    """Where torchvision keeps (and looks for) ``weights``: torch.hub's checkpoints folder, url's basename."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def fetch_weights(model_names: Sequence[str], progress: bool = True) -> list[Path]:
    """Download the DEFAULT weights of ``model_names`` into torch.hub's cache (needs internet); returns the files."""
    names = zoo.parse_models(",".join(model_names))
    files = []
    for name in names:
        weights = default_weights(name)
        weights.get_state_dict(progress=progress, check_hash=True)
        files.append(cached_file(weights))
    return files


def _torchvision_pretrained(name: str, num_classes: int, image_size: int) -> tuple[Any, dict[str, Any]]:
    weights = default_weights(name)
    path = cached_file(weights)
    if not path.exists():
        hint = (
            f"pretrained weights for {name} are not cached: {path} is missing. On a machine with internet run"
            f" `energy-bench fetch-weights {name}` (or copy {path.name} into {path.parent}),"
            " or use --energy-weights=self"
        )
        if os.environ.get("ENERGY_BENCH_OFFLINE"):
            raise WeightsUnavailable(hint)
        try:
            weights.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # offline: URLError, socket errors, ...
            raise WeightsUnavailable(f"{hint} (download failed: {exc})") from None
    model = zoo.build_model(name, num_classes, image_size, weights=weights)
    return model, {"source": "pretrained", "weights": str(weights), "path": str(path)}


# --- PATH: user state dicts -------------------------------------------------------------------------------------


def resolve_path(name: str, path: str) -> Path:
    """The state-dict file for ``name``: ``path`` itself, or ``path/<name>.pt`` (``.pth``) for a folder."""
    p = Path(path).expanduser()
    if p.is_dir():
        for ext in (".pt", ".pth"):
            if (p / f"{name}{ext}").is_file():
                return p / f"{name}{ext}"
        raise WeightsError(f"--energy-weights={path}: folder has no {name}.pt or {name}.pth")
    if not p.is_file():
        raise WeightsError(f"--energy-weights={path}: no such file or folder")
    return p


def read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: cannot read a state dict ({type(exc).__name__}: {exc})") from None
    for wrapper in ("state_dict", "model"):  # common checkpoint layouts
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise WeightsError(f"{path}: not a state dict (a dict of parameter name -> tensor)")
    return obj


def load_state_into(name: str, model: Any, state: dict[str, Any], origin: str) -> dict[str, Any]:
    """Load ``state`` into ``model`` (a ``name`` built for the data set); WeightsError on the first mismatch.

    Tolerated: a head for another number of classes (kept fresh) and ViT position embeddings for another image
    size (interpolated). Returns what was adapted.
    """
    import torch

    expected = model.state_dict()
    state = dict(state)
    head = zoo.get_spec(name).head
    adapted: dict[str, Any] = {}
    if name == "vit_b_16" and "encoder.pos_embedding" in state:
        want = expected["encoder.pos_embedding"].shape
        if state["encoder.pos_embedding"].shape != want and state["encoder.pos_embedding"].dim() == 3:
            from torchvision.models.vision_transformer import interpolate_embeddings

            state = interpolate_embeddings(model.image_size, model.patch_size, state)
            adapted["pos_embedding"] = "interpolated"
    for key in expected:
        if key not in state:
            raise WeightsError(f"{origin}: does not fit {name}: missing key {key!r}")
    for key in state:
        if key not in expected:
            raise WeightsError(f"{origin}: does not fit {name}: unexpected key {key!r}")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            if key.startswith(head + "."):
                adapted["head"] = f"replaced ({tuple(tensor.shape)} in the file)"
                state[key] = expected[key]
                continue
            raise WeightsError(
                f"{origin}: does not fit {name}: {key!r} has shape {list(tensor.shape)} in the file,"
                f" {list(expected[key].shape)} in the model"
            )
    with torch.no_grad():
        model.load_state_dict(state)
    return adapted


# --- self: pretraining on the data set, cached --------------------------------------------------------------------


def self_cache_key(name: str, data_label: str, image_size: int, seed: int, recipe: str) -> str:
    data_id = hashlib.sha1(data_label.encode()).hexdigest()[:8]
    safe = "".join(c if c.isalnum() else "_" for c in data_label.rsplit(os.sep, 1)[-1])[:24]
    return f"{name}-{safe}-{data_id}-{image_size}px-seed{seed}-{recipe}"


def _self_pretrained(
    name: str, data: Any, image_size: int, seed: int, profile: Any, device: Any, cache: Path | None
) -> tuple[Any, dict[str, Any]]:
    import torch

    from . import train
    from .profiles import pretrain_lr, pretrain_steps

    lr = pretrain_lr(profile, name)
    steps = pretrain_steps(profile, name)
    recipe = f"{profile.pretrain_optimizer}{lr:g}-{steps}x{profile.batch_size}-{train.PRETRAIN_RECIPE}"
    key = self_cache_key(name, data.source.label, image_size, seed, recipe)
    path = (cache or cache_dir()) / "weights" / f"{key}.pt"
    torch.manual_seed(seed)
    model = zoo.build_model(name, data.num_classes, image_size)
    info = {"source": "self", "cache_key": key, "path": str(path), "pretrain_steps": steps}
    if path.exists():
        load_state_into(name, model, read_state_dict(path), str(path))
        return model, {**info, "cached": True}
    start = time.perf_counter()
    loss = train.pretrain(
        model,
        data,
        device=device,
        steps=steps,
        batch_size=profile.batch_size,
        optimizer=profile.pretrain_optimizer,
        lr=lr,
        seed=seed,
        head=zoo.head_module(name, model),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, path)  # atomic: a parallel or interrupted run never sees half a file
    return model, {
        **info,
        "cached": False,
        "pretrain_seconds": round(time.perf_counter() - start, 2),
        "pretrain_loss": round(loss, 4),
    }


# --- one entry point ---------------------------------------------------------------------------------------------


def load_pretrained(
    name: str,
    source: str | None,
    *,
    data: Any,
    image_size: int | None = None,
    seed: int = 0,
    cache_dir: Path | None = None,
    profile: Any = None,
    device: Any = None,
) -> tuple[Any, dict[str, Any]]:
    """``(model, info)``: ``name`` with a head for ``data``'s classes and weights from ``source``.

    ``source``: pretrained|self|random|PATH (None = the profile's default). ``info`` is plain JSON saying where the
    weights came from. Raises WeightsUnavailable (pretrained, offline) or WeightsError (PATH that does not fit).
    """
    import torch

    from .profiles import get_profile

    profile = profile or get_profile(None)
    source = source or profile.weights
    image_size = image_size or data.image_size
    device = torch.device(device or "cpu")
    if source == "pretrained":
        model, info = _torchvision_pretrained(name, data.num_classes, image_size)
    elif source == "self":
        model, info = _self_pretrained(name, data, image_size, seed, profile, device, cache_dir)
    elif source == "random":
        torch.manual_seed(seed)
        model, info = zoo.build_model(name, data.num_classes, image_size), {"source": "random", "seed": seed}
    else:
        path = resolve_path(name, source)
        torch.manual_seed(seed)
        model = zoo.build_model(name, data.num_classes, image_size)
        adapted = load_state_into(name, model, read_state_dict(path), str(path))
        info = {"source": "path", "path": str(path), **({"adapted": adapted} if adapted else {})}
    return model.to(device), info
