"""Low-rank factorization: ranks, parameter counts, reconstruction quality, layer semantics."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from energy_bench.compress import apply
from energy_bench.compress.lowrank import cuts_work, factor, rank_for_energy, spectrum, target_rank
from energy_bench.compress.stats import count_parameters, multiply_adds

dims = st.integers(1, 32)
fractions = st.floats(0.01, 1.0)


def _matrix(m, n, seed):
    return torch.randn(m, n, generator=torch.Generator().manual_seed(seed))


@settings(max_examples=25, deadline=None)
@given(dims, dims, st.integers(0, 1000))
def test_reconstruction_error_is_optimal_and_shrinks_with_rank(m, n, seed):
    w = _matrix(m, n, seed)
    energies, vectors, left = spectrum(w)
    singular = torch.linalg.svdvals(w.double())
    errors = []
    for r in range(1, min(m, n) + 1):
        b, a = factor(w, energies, vectors, left, r)
        assert b.shape == (m, r) and a.shape == (r, n)
        error = float(torch.linalg.matrix_norm((w - b @ a).double()))
        optimal = float(singular[r:].square().sum().sqrt())  # Eckart-Young
        assert error == pytest.approx(optimal, abs=1e-4 * float(singular[0]) + 1e-6)
        errors.append(error)
    assert all(later <= earlier + 1e-4 * float(singular[0]) for earlier, later in itertools.pairwise(errors))
    assert errors[-1] < 1e-3 * float(singular[0]) + 1e-5  # full rank reproduces W


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(2, 40), min_size=2, max_size=4), fractions, st.booleans())
def test_parameter_counts_match_the_formula(widths, fraction, bias):
    model = nn.Sequential(*[nn.Linear(a, b, bias=bias) for a, b in itertools.pairwise(widths)])
    result = apply(model, f"lowrank:rank={fraction!r}", example_input=torch.randn(3, widths[0]))
    expected_params, expected_macs, factorized = 0, 0, 0
    for a, b in itertools.pairwise(widths):
        r = max(1, math.ceil(fraction * min(a, b) - 1e-9))
        cost = r * (a + b) if r * (a + b) < a * b else a * b
        factorized += r * (a + b) < a * b
        expected_params += cost + (b if bias else 0)
        expected_macs += cost
    assert count_parameters(result.model) == result.details["parameters"] == expected_params
    assert result.details["multiply_adds"] == expected_macs == multiply_adds(result.model, torch.randn(3, widths[0]))
    assert result.details["layers_factorized"] == factorized == len(result.details["ranks"])
    assert result.details["layers_left_alone"] == len(widths) - 1 - factorized


@settings(max_examples=40, deadline=None)
@given(dims, dims, st.floats(0.05, 1.0), st.integers(0, 1000))
def test_energy_rank_is_the_fewest_singular_values(m, n, energy, seed):
    w = _matrix(m, n, seed)
    squares = torch.linalg.svdvals(w.double()).square()
    cumulative = (torch.cumsum(squares, 0) / squares.sum()).tolist()
    r = rank_for_energy(spectrum(w)[0], energy)
    assert cumulative[r - 1] >= energy - 1e-6
    assert r == 1 or cumulative[r - 2] < energy + 1e-6


def test_rank_rules():
    assert target_rank(10, 0.5) == 5 and target_rank(7, 0.5) == 4 and target_rank(100, 0.001) == 1
    assert target_rank(64, 1.0) == 64
    assert cuts_work(32, 64, 576) and not cuts_work(128, 256, 256)


@pytest.mark.parametrize("stride, padding, dilation, bias", [(1, 1, 1, True), (2, 0, 1, False), (1, 2, 2, True)])
def test_factorized_conv_computes_the_rank_r_convolution(stride, padding, dilation, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 16, 3, stride=stride, padding=padding, dilation=dilation, bias=bias)
    result = apply(conv, "lowrank:rank=0.25", example_input=torch.randn(1, 6, 9, 9))
    first, second = result.model
    assert (first.out_channels, first.kernel_size, first.stride, first.padding, first.dilation, first.bias) == (
        4,
        (3, 3),
        conv.stride,
        conv.padding,
        conv.dilation,
        None,
    )
    assert second.kernel_size == (1, 1) and (second.bias is not None) == bias
    u, s, vh = torch.linalg.svd(conv.weight.detach().reshape(16, -1).double(), full_matrices=False)
    reference = nn.functional.conv2d  # the rank-4 weight, applied as the original conv
    w4 = (u[:, :4] * s[:4] @ vh[:4]).float().reshape(conv.weight.shape)
    x = torch.randn(2, 6, 9, 9)
    expected = reference(x, w4, conv.bias, stride, padding, dilation)
    assert torch.allclose(result.model(x), expected, atol=1e-4)
    assert result.details["multiply_adds"] < result.details["multiply_adds_before"]


def test_attention_projections_and_grouped_convs_are_left_alone():
    import torchvision

    vit = torchvision.models.VisionTransformer(
        image_size=16, patch_size=8, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=32, num_classes=3
    )
    result = apply(vit, "lowrank:rank=0.25", example_input=torch.randn(2, 3, 16, 16))
    attention = result.model.encoder.layers[0].self_attention
    assert isinstance(attention.out_proj, nn.Linear)
    assert isinstance(result.model.encoder.layers[0].mlp[0], nn.Sequential)
    assert result.model(torch.randn(2, 3, 16, 16)).shape == (2, 3)
    depthwise = nn.Conv2d(8, 8, 3, groups=8)
    assert apply(depthwise, "lowrank:rank=0.1").details["layers_factorized"] == 0


def test_caller_model_is_untouched():
    model = nn.Sequential(nn.Linear(40, 40), nn.Linear(40, 2))
    apply(model, "lowrank:rank=0.1")
    assert all(isinstance(m, nn.Linear) for m in model)


def test_float32_path_for_big_matrices_is_near_optimal(monkeypatch):
    from energy_bench.compress import lowrank

    monkeypatch.setattr(lowrank, "PRECISE_SIDE", 0)  # what layers with both sides > 1024 get
    w = _matrix(200, 300, 7) @ torch.diag(torch.logspace(0, -3, 300))  # a decaying spectrum
    energies, vectors, left = spectrum(w)
    assert vectors.dtype == torch.float32
    singular = torch.linalg.svdvals(w.double())
    for r in (5, 50, 150):
        b, a = factor(w, energies, vectors, left, r)
        error = float(torch.linalg.matrix_norm((w - b @ a).double()))
        assert error <= float(singular[r:].square().sum().sqrt()) * 1.01 + 1e-5 * float(singular[0])
