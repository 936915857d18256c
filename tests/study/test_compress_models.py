"""Every compressor on real torchvision architectures at small input sizes (random weights)."""

import json

import pytest
import torch
import torchvision

from energy_bench.compress import COMPRESSORS, apply

# A few of the study's nine, chosen to cover residual additions (resnet18), concatenating branches (googlenet) and
# attention (vit_b_16) in a few seconds; all nine are compressed by the study benchmarks (benchmarks/).
CASES = [("resnet18", name) for name in COMPRESSORS if name != "prune-structured"] + [  # that one: test_compress_prune
    ("googlenet", "prune-structured"),
    ("googlenet", "lowrank"),
    ("vit_b_16", "prune-structured"),
]


def build(name):
    kwargs = {"googlenet": {"aux_logits": False, "init_weights": True}, "vit_b_16": {"image_size": 32}}.get(name, {})
    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None, num_classes=10, **kwargs).eval()


@pytest.mark.parametrize("model_name, compressor", CASES, ids=[f"{m}-{c}" for m, c in CASES])
def test_compressor_on_torchvision_model(model_name, compressor):
    model = build(model_name)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        reference = model(x).argmax(1)

    def agreement(m):  # accuracy against the uncompressed model's own predictions
        with torch.no_grad():
            return float((m(x).argmax(1) == reference).float().mean())

    result = apply(model, compressor, eval_fn=agreement, example_input=x)
    with torch.no_grad():
        assert result.model(x).shape == (4, 10)
    assert result.model is not model
    assert result.spec.name == compressor and isinstance(result.dtype, torch.dtype)
    assert json.loads(json.dumps(result.details)) == result.details  # plain JSON for extra_info
    if "multiply_adds" in result.details:
        assert result.details["multiply_adds"] < result.details["multiply_adds_before"]
    if compressor == "stego":
        assert result.details["accuracy"] >= result.details["baseline_accuracy"] - 0.01
