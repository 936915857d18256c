"""The study's nine torchvision models: names, heads, minimum input sizes, parameter counts.

Reads like torchvision's own registry: ``MODELS`` maps a name to a ``ModelSpec``; ``build_model`` builds one with
a classification head for the data set's classes. ``MODEL_NAMES`` is importable without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    name: str
    head: str  # dotted path of the final nn.Linear that is replaced for the data set's classes
    min_size: int  # smallest square input (pixels) the architecture accepts
    paper_params: float  # millions, as the study (and torchvision's ImageNet model) reports them
    size_multiple: int = 1  # the input must be a multiple of this (ViT's patch size)


# In the study's order: by parameter count, 8M to 138M.
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("densenet121", "classifier", 32, 8.0),
        ModelSpec("resnet18", "fc", 16, 11.7),
        ModelSpec("googlenet", "fc", 16, 13.0),
        ModelSpec("resnet50", "fc", 16, 25.6),
        ModelSpec("inception_v3", "fc", 75, 27.2),
        ModelSpec("resnet101", "fc", 16, 44.5),
        ModelSpec("alexnet", "classifier.6", 63, 61.1),
        ModelSpec("vit_b_16", "heads.head", 16, 86.6, size_multiple=16),
        ModelSpec("vgg16", "classifier.6", 32, 138.4),
    )
}

MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}") from None


def parse_models(text: str) -> tuple[str, ...]:
    """Parse a comma-separated model list (``--energy-models``); ValueError lists the valid names."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not names:
        raise ValueError(f"no model names in {text!r}; valid models: {', '.join(MODEL_NAMES)}")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(map(repr, unknown))}; valid models: {', '.join(MODEL_NAMES)}")
    return names


def input_size(name: str, requested: int) -> int:
    """The image size ``name`` is run at: ``requested``, raised to the model's minimum (and patch multiple)."""
    spec = get_spec(name)
    size = max(requested, spec.min_size)
    return -(-size // spec.size_multiple) * spec.size_multiple


def _arch_kwargs(name: str, image_size: int) -> dict[str, Any]:
    if name in ("googlenet", "inception_v3"):
        # No auxiliary classifiers: the study fine-tunes the main head only; init_weights silences a warning.
        return {"aux_logits": False, "init_weights": True}
    if name == "vit_b_16":
        return {"image_size": image_size}
    return {}


def build_model(name: str, num_classes: int, image_size: int, weights: Any | None = None) -> Any:
    """A torchvision ``name`` with a fresh ``num_classes`` head, for ``image_size`` inputs.

    ``weights=None``: random initialization, built directly at ``num_classes``. ``weights`` (an enum member or
    "DEFAULT"): torchvision's pretrained model (loaded from the hub cache, downloading when online), then its
    head is replaced; a pretrained ViT is rebuilt at ``image_size`` with interpolated position embeddings.
    """
    import torchvision

    get_spec(name)
    if image_size != input_size(name, image_size):
        raise ValueError(
            f"{name} needs square inputs of at least {get_spec(name).min_size} px"
            f" (a multiple of {get_spec(name).size_multiple}); got {image_size}"
        )
    if weights is None:
        return torchvision.models.get_model(
            name, weights=None, num_classes=num_classes, **_arch_kwargs(name, image_size)
        )
    model = torchvision.models.get_model(name, weights=weights)
    model = adapt_image_size(name, model, image_size)
    replace_head(name, model, num_classes)
    return model


def adapt_image_size(name: str, model: Any, image_size: int) -> Any:
    """Only ViT has a fixed input size: rebuild it at ``image_size``, interpolating its position embeddings."""
    if name != "vit_b_16" or model.image_size == image_size:
        return model
    import torchvision
    from torchvision.models.vision_transformer import interpolate_embeddings

    state = interpolate_embeddings(image_size, model.patch_size, model.state_dict())
    rebuilt = torchvision.models.get_model(name, weights=None, num_classes=model.num_classes, image_size=image_size)
    rebuilt.load_state_dict(state)
    return rebuilt


def head_module(name: str, model: Any) -> Any:
    return model.get_submodule(get_spec(name).head)


def replace_head(name: str, model: Any, num_classes: int) -> None:
    """Swap the final Linear for a freshly initialized one with ``num_classes`` outputs (in place)."""
    import torch

    head = head_module(name, model)
    parent_path, _, attr = get_spec(name).head.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    new_head = torch.nn.Linear(head.in_features, num_classes)
    setattr(parent, attr, new_head.to(head.weight.device))
    if hasattr(model, "num_classes"):
        model.num_classes = num_classes
