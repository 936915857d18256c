"""Where a study model's starting weights come from: ``--energy-weights=pretrained|self|random|PATH``.

- ``pretrained``: torchvision's weights API (``DEFAULT`` weights), read from ``torch.hub.get_dir()/checkpoints``;
  downloaded only when missing and online (never when ``ENERGY_BENCH_OFFLINE=1``). Missing offline raises
  ``WeightsUnavailable`` (the fixtures turn it into a skip) naming the file and how to get it. Every load checks the
  file against the SHA-256 prefix in its name (as torch.hub does on download) and reads it with
  ``weights_only=True``; a mismatch is a ``WeightsError`` naming the file and what to do.
- ``self``: pretrained from random initialization on the data set's train split, once; the state dict is cached
  under ``cache_dir()`` keyed by model, data set (by content), image size, seed and pretraining recipe. A cached
  file that cannot be read is removed and retrained, with a warning; a cache that cannot be written only warns.
- ``random``: no pretraining.
- ``PATH``: a state-dict file, or a folder of ``<model>.pt``/``.pth`` files. The file may hold the data set's head
  or another one (e.g. ImageNet's 1000 classes: the head is then replaced); anything else that does not fit is a
  ``WeightsError`` naming the file and the first mismatch.

Every file is read with ``torch.load(weights_only=True)``: a weights file can hold tensors, never code.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from energy_bench.errors import EnergyBenchError

from . import cache, zoo
from .cache import cache_dir

SOURCES = ("pretrained", "self", "random")


class WeightsError(EnergyBenchError):
    """A weights file that cannot be used (missing, unreadable, wrong keys or shapes, wrong hash)."""


class WeightsUnavailable(EnergyBenchError):
    """Pretrained weights are not cached and cannot be downloaded (offline): skip, don't fail."""


def check_option(value: str | None) -> str | None:
    """Validate ``--energy-weights`` cheaply (no torch); ValueError when a PATH does not exist."""
    if value in (None, "") or value in SOURCES:
        return value or None
    if not os.path.exists(os.path.expanduser(value)):
        raise ValueError(f"--energy-weights={value}: not one of {', '.join(SOURCES)} and no such file or folder")
    return value


# --- pretrained: torchvision's weights API ----------------------------------------------------------------------

#: torchvision's legacy DenseNet keys ('norm.1') and today's ('norm1'), as torchvision's own loader renames them
_DENSENET_LEGACY_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


def default_weights(name: str) -> Any:
    import torchvision

    zoo.get_spec(name)
    return torchvision.models.get_model_weights(name).DEFAULT


def cached_file(weights: Any) -> Path:
    """Where torchvision keeps (and looks for) ``weights``: torch.hub's checkpoints folder, url's basename."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def hash_prefix(path: Path) -> str:
    """The SHA-256 prefix a torchvision weights file carries in its name, after the last '-' (``resnet18-f37072fd``)."""
    stem = path.name.split(".", 1)[0]
    prefix = stem.rpartition("-")[2]
    if "-" not in stem or not re.fullmatch(r"[0-9a-f]{6,64}", prefix):
        raise WeightsError(f"{path}: its name carries no SHA-256 prefix (NAME-HASH.pth), so it cannot be verified")
    return prefix


def check_file_hash(path: Path, model: str) -> str:
    """The file's SHA-256 after checking it starts with the prefix in the file name; WeightsError if not."""
    expected = hash_prefix(path)
    digest = cache.file_sha256(path)
    if not digest.startswith(expected):
        raise WeightsError(
            f"{path}: SHA-256 {digest[: len(expected)]}... does not match {expected} in its name (a partial download"
            f" or a replaced file): run `energy-bench fetch-weights {model}` to download it again, or copy the original"
            " file there"
        )
    return digest


def download(weights: Any, path: Path, progress: bool) -> None:
    """Download ``weights`` to ``path`` (torch.hub checks the hash prefix and renames a complete file into place)."""
    import torch

    cache.make_private_dir(path.parent)
    torch.hub.download_url_to_file(weights.url, str(path), hash_prefix=hash_prefix(path), progress=progress)


def fetch_weights(model_names: Sequence[str], progress: bool = True) -> list[Path]:
    """Download the DEFAULT weights of ``model_names`` into torch.hub's cache (needs internet); returns the files.

    A file already there is kept when it matches the hash in its name, and downloaded again when it does not.
    """
    files = []
    for name in zoo.parse_models(",".join(model_names)):
        weights = default_weights(name)
        path = cached_file(weights)
        if not _intact(path, name):
            download(weights, path, progress)
        files.append(path)
    return files


def _intact(path: Path, model: str) -> bool:
    try:
        return path.exists() and bool(check_file_hash(path, model))
    except WeightsError:
        return False  # damaged or replaced: fetch the original over it


def read_verified(path: Path, model: str) -> tuple[dict[str, Any], str]:
    """The state dict in torchvision weights file ``path`` and its SHA-256: hash checked first, tensors only."""
    digest = check_file_hash(path, model)
    return read_state_dict(path), digest


def _pretrained_architecture(name: str, weights: Any, state: dict[str, Any]) -> Any:
    """What ``torchvision.models.get_model(name, weights=weights)`` builds, holding ``state`` (read by us)."""
    import torchvision

    kwargs: dict[str, Any] = {"num_classes": len(weights.meta["categories"])}
    if name in ("googlenet", "inception_v3"):  # torchvision's builders for pretrained weights
        kwargs.update(transform_input=True, aux_logits=True, init_weights=False)
    if name == "vit_b_16":
        kwargs["image_size"] = weights.meta["min_size"][0]
    if name == "densenet121":
        state = {_DENSENET_LEGACY_KEY.sub(r"\1\2", key): value for key, value in state.items()}
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    model.load_state_dict(state)
    if name == "googlenet":  # torchvision drops googlenet's auxiliary heads unless asked (inception_v3 keeps them)
        model.aux_logits, model.aux1, model.aux2 = False, None, None
    return model


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
            download(weights, path, progress=False)
        except Exception as exc:  # offline: URLError, socket errors, ...
            raise WeightsUnavailable(f"{hint} (download failed: {exc})") from None
    state, digest = read_verified(path, name)
    try:
        model = _pretrained_architecture(name, weights, state)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: does not fit {name} ({str(exc).splitlines()[0]})") from None
    model = zoo.adapt_image_size(name, model, image_size)
    zoo.replace_head(name, model, num_classes)
    return model, {"source": "pretrained", "weights": str(weights), "path": str(path), "sha256": digest}


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


def self_cache_key(name: str, data_identity: str, image_size: int, seed: int, recipe: str) -> str:
    """The file name (without .pt) of ``self`` weights: what they were trained from and how, never where."""
    data_id = hashlib.sha1(data_identity.encode()).hexdigest()[:8]
    safe = "".join(c if c.isalnum() else "_" for c in data_identity.split(":", 1)[0])[:24]
    return f"{name}-{safe}-{data_id}-{image_size}px-seed{seed}-{recipe}"


def _self_pretrained(
    name: str, data: Any, image_size: int, seed: int, profile: Any, device: Any, cache_root: Path | None
) -> tuple[Any, dict[str, Any]]:
    import torch

    from . import train
    from .profiles import pretrain_lr, pretrain_steps

    lr = pretrain_lr(profile, name)
    steps = pretrain_steps(profile, name)
    recipe = f"{profile.pretrain_optimizer}{lr:g}-{steps}x{profile.batch_size}-{train.PRETRAIN_RECIPE}"
    key = self_cache_key(name, data.identity, image_size, seed, recipe)
    path = (cache_root or cache_dir()) / "weights" / f"{key}.pt"
    torch.manual_seed(seed)
    model = zoo.build_model(name, data.num_classes, image_size)
    info = {"source": "self", "cache_key": key, "path": str(path), "pretrain_steps": steps}

    def load_cached(file: Path) -> dict[str, Any]:
        return load_state_into(name, model, read_state_dict(file), str(file))

    if cache.read_or_discard(path, load_cached, f"self-pretrained {name} weights") is not None:
        return model, {**info, "cached": True}
    torch.manual_seed(seed)
    model = zoo.build_model(name, data.num_classes, image_size)  # a half-loaded file may have touched the first one
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
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    cached = cache.write_atomic(path, lambda tmp: torch.save(state, tmp), f"self-pretrained {name} weights")
    return model, {
        **info,
        "cached": False,
        "saved": cached,
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
    cache_root: Path | None = None,
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
        model, info = _self_pretrained(name, data, image_size, seed, profile, device, cache_root)
    elif source == "random":
        torch.manual_seed(seed)
        model, info = zoo.build_model(name, data.num_classes, image_size), {"source": "random", "seed": seed}
    else:
        path = resolve_path(name, source)
        torch.manual_seed(seed)
        model = zoo.build_model(name, data.num_classes, image_size)
        adapted = load_state_into(name, model, read_state_dict(path), str(path))
        info = {"source": "path", "path": str(path), "sha256": cache.file_sha256(path)}
        info.update({"adapted": adapted} if adapted else {})
    return model.to(device), info
