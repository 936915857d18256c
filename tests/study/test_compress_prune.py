"""Unstructured and structured pruning; the size/work statistics."""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

from energy_bench.compress import apply
from energy_bench.compress.prune import l1_mask
from energy_bench.compress.stats import count_nonzero, count_parameters, multiply_adds, weight_bytes

amounts = st.floats(0.05, 0.95)


def mlp(widths):
    layers = []
    for a, b in itertools.pairwise(widths):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def convnet(c1, c2, classes=7):
    return nn.Sequential(
        nn.Conv2d(3, c1, 3, padding=1),
        nn.BatchNorm2d(c1),
        nn.ReLU(),
        nn.Conv2d(c1, c2, 3, stride=2, padding=1),
        nn.BatchNorm2d(c2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c2, classes),
    )


def test_statistics_of_a_known_model():
    model = nn.Linear(5, 3)
    with torch.no_grad():
        model.weight[0].zero_()
    assert count_parameters(model) == 18 and count_nonzero(model) == 13
    assert weight_bytes(model) == 72 and weight_bytes(model, torch.bfloat16) == 36
    assert multiply_adds(model, torch.randn(4, 5)) == 15  # per sample
    conv = nn.Conv2d(2, 4, 3, padding=1)
    assert multiply_adds(conv, torch.randn(2, 2, 6, 6)) == 4 * 2 * 9 * 36


def test_multiply_adds_restores_training_mode():
    model = convnet(4, 4).train()
    multiply_adds(model, torch.randn(2, 3, 8, 8))
    assert all(m.training for m in model.modules())


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=2, max_size=4), amounts)
def test_unstructured_sparsity_equals_the_amount(widths, amount):
    model = mlp(widths)
    result = apply(model, f"prune:amount={amount!r}")
    linears = [m for m in result.model.modules() if isinstance(m, nn.Linear)]
    for layer in linears:
        zeros = layer.weight.numel() - int(layer.weight.count_nonzero())
        assert zeros == round(amount * layer.weight.numel())  # torch.nn.utils.prune's rounding, per layer
        assert not hasattr(layer, "weight_mask")  # made permanent
    total = sum(m.weight.numel() for m in linears)
    assert abs(result.details["sparsity"] - amount) <= len(linears) / total
    assert result.details["layers_pruned"] == len(linears)
    assert result.details["nonzero_parameters"] == count_nonzero(result.model)
    assert all(int(m.weight.count_nonzero()) == m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def test_unstructured_pruning_removes_the_smallest_weights():
    model = nn.Linear(10, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2, 3, -4, 5, -6, 7, -8, 9, -10]]))
    pruned = apply(model, "prune:amount=0.3").model
    assert pruned.weight.tolist() == [[0.0, 0, 0, -4, 5, -6, 7, -8, 9, -10]]


@settings(max_examples=10, deadline=None)
@given(st.integers(4, 24), st.integers(4, 24), st.floats(0.1, 0.7), st.integers(5, 12))
def test_structured_pruning_cuts_work_and_keeps_output_shape(c1, c2, amount, size):
    model = convnet(c1, c2)
    x = torch.randn(2, 3, size, size)
    result = apply(model, f"prune-structured:amount={amount!r}", example_input=x)
    d = result.details
    assert result.model(x).shape == (2, 7)
    assert d["multiply_adds_before"] == multiply_adds(model, x)
    assert d["multiply_adds"] == multiply_adds(result.model, x)
    assert d["parameters"] == count_parameters(result.model) <= d["parameters_before"] == count_parameters(model)
    convs = [m for m in result.model.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [int(c * (1 - amount)) for c in (c1, c2)]  # torch-pruning's rounding
    if int(c1 * (1 - amount)) < c1 or int(c2 * (1 - amount)) < c2:
        assert d["multiply_adds"] < d["multiply_adds_before"]


def test_structured_pruning_on_resnet18():
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=10)
    x = torch.randn(2, 3, 32, 32)
    result = apply(model, "prune-structured:amount=0.3", example_input=x)
    d = result.details
    assert result.model(x).shape == (2, 10)
    assert result.model.fc.out_features == 10
    assert d["multiply_adds"] < 0.6 * d["multiply_adds_before"]  # ~(1 - 0.3)^2 where both sides shrink
    assert d["parameters"] < d["parameters_before"]


def test_structured_pruning_needs_an_example_input():
    with pytest.raises(ValueError, match="needs example_input"):
        apply(convnet(4, 4), "prune-structured")


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 300), amounts, st.integers(0, 2**31 - 1))
def test_l1_mask_is_l1_unstructured_mask(numel, amount, seed):
    weight = torch.randn(numel, generator=torch.Generator().manual_seed(seed))  # no ties: one right answer
    layer = nn.Linear(numel, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight.view(1, -1))
    prune.l1_unstructured(layer, name="weight", amount=amount)
    assert torch.equal(l1_mask(weight.view(1, -1), amount), layer.weight_mask)


@given(st.integers(0, 40), st.integers(1, 40), amounts)
def test_l1_mask_prunes_exactly_the_amount_among_ties(zeros, ones, amount):
    weight = torch.cat([torch.zeros(zeros), torch.ones(ones)])  # many entries tie at the threshold
    mask = l1_mask(weight, amount)
    k = round(amount * weight.numel())
    assert int((mask == 0).sum()) == k
    assert bool((mask[weight.abs() < weight.abs().kthvalue(max(k, 1)).values] == 0).all())
