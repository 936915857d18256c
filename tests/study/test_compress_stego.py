"""Steganographic capacity reduction: bit operations, format rules and the capacity search on a trained model."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from energy_bench.compress import apply
from energy_bench.compress.stego import FLOAT16_MAX, dtype_candidates, randomize_bits, truncate_bits

finite32 = arrays(np.float32, st.integers(1, 64), elements=st.floats(width=32, allow_nan=False, allow_infinity=False))
bit_counts = st.integers(0, 23)


def _bits(t: torch.Tensor) -> np.ndarray:
    return t.view(torch.int32).numpy().view(np.uint32)


@settings(max_examples=200, deadline=None)
@given(finite32, bit_counts)
def test_truncation_clears_exactly_the_low_bits(values, n):
    t = torch.from_numpy(values.copy())
    out = truncate_bits(t, n)
    mask = np.uint32((0xFFFFFFFF << n) & 0xFFFFFFFF)
    assert (_bits(out) == (_bits(t) & mask)).all()
    assert (_bits(out) >> 23 == _bits(t) >> 23).all()  # sign and exponent untouched
    assert torch.equal(t, torch.from_numpy(values))  # input not modified
    if n == 0:
        assert torch.equal(out.view(torch.int32), t.view(torch.int32))


@settings(max_examples=100, deadline=None)
@given(finite32, bit_counts, st.integers(0, 2**31))
def test_randomization_touches_only_the_low_bits(values, n, seed):
    t = torch.from_numpy(values)
    out = randomize_bits(t, n, torch.Generator().manual_seed(seed))
    high = np.uint32((0xFFFFFFFF << n) & 0xFFFFFFFF)
    assert (_bits(out) & high == _bits(t) & high).all()
    assert torch.isfinite(out).all()


def test_randomization_really_randomizes():
    t = torch.ones(4096)
    low = _bits(randomize_bits(t, 23, torch.Generator().manual_seed(0))) & 0x7FFFFF
    assert len(np.unique(low)) > 4000
    assert np.unique((low >> 22) & 1).tolist() == [0, 1]  # the highest randomized bit varies too


def test_bit_operations_reject_other_dtypes_and_counts():
    with pytest.raises(ValueError, match="float32"):
        truncate_bits(torch.ones(2, dtype=torch.float64), 3)
    with pytest.raises(ValueError, match="0..23"):
        truncate_bits(torch.ones(2), 24)


NATIVE = st.sampled_from([None, (), (torch.bfloat16,), (torch.float16,), (torch.bfloat16, torch.float16)])


@settings(max_examples=300, deadline=None)
@given(bit_counts, st.floats(0, 1e6), NATIVE, st.booleans())
def test_format_rules(n, max_abs, formats, checked):
    candidates = dtype_candidates(n, max_abs, formats, checked=checked)
    native = (torch.bfloat16, torch.float16) if formats is None else formats
    assert candidates[-1] == torch.float32 and candidates.count(torch.float32) == 1
    # only native formats; exact fits unless an accuracy check judges them; float16 never past its range
    assert (torch.bfloat16 in candidates) == (torch.bfloat16 in native and (checked or n >= 16))
    assert (torch.float16 in candidates) == (
        torch.float16 in native and (checked or n >= 13) and max_abs <= FLOAT16_MAX
    )
    if torch.bfloat16 in candidates:
        assert candidates[0] == torch.bfloat16  # narrowest first


@settings(max_examples=100, deadline=None)
@given(finite32.filter(lambda a: np.abs(a).max() < 3e38), st.integers(16, 23))
def test_bfloat16_holds_truncated_weights_exactly(values, n):
    t = truncate_bits(torch.from_numpy(values), n)
    assert torch.equal(t.to(torch.bfloat16).float().view(torch.int32), t.view(torch.int32))


# --- the capacity search on a small trained model -------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_mlp():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(100):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[:1200]), y[:1200]).backward()
        optimizer.step()
    model.eval()

    def accuracy(m):
        with torch.no_grad():
            return float((m(x[1200:]).argmax(1) == y[1200:]).float().mean())

    assert accuracy(model) > 0.85
    return model, accuracy


def _low_bits_zero(model, n):
    mask = (1 << n) - 1
    return all(int((p.detach().view(torch.int32) & mask).count_nonzero()) == 0 for p in model.parameters())


def test_capacity_found_and_accuracy_kept(digits_mlp):
    model, accuracy = digits_mlp
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = apply(model, "stego:tolerance=0.01", eval_fn=accuracy)
    d = result.details
    assert 0 < d["capacity_bits"] <= 23 and 0 <= d["truncated_bits"] <= d["capacity_bits"]
    assert d["baseline_accuracy"] == accuracy(model)
    assert d["accuracy"] == pytest.approx(accuracy(result.model), abs=1e-9)
    assert d["accuracy"] >= d["baseline_accuracy"] - 0.01 - 1e-9
    assert d["trials"][f"{d['capacity_bits']}/draw1"] >= d["baseline_accuracy"] - 0.01 - 1e-9  # verified
    if d["capacity_bits"] < 23:  # the next bit failed in the search
        assert d["trials"][str(d["capacity_bits"] + 1)] < d["baseline_accuracy"] - 0.01
    assert _low_bits_zero(result.model, d["truncated_bits"])
    assert result.dtype == getattr(torch, d["dtype"])
    assert result.dtype in dtype_candidates(d["truncated_bits"], 0.0, checked=True)
    assert (d["training"] == "fp32") == (result.dtype == torch.float32)
    # buffers (BatchNorm running statistics) are left alone; the caller's model is untouched
    for name, buffer in result.model.named_buffers():
        assert torch.equal(buffer, before[name])
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])


@settings(max_examples=6, deadline=None)
@given(st.floats(0, 0.2), st.floats(0, 0.2))
def test_larger_tolerance_never_lowers_capacity(digits_mlp, a, b):
    model, accuracy = digits_mlp
    low, high = sorted((a, b))
    small = apply(model, f"stego:tolerance={low!r}", eval_fn=accuracy).details
    large = apply(model, f"stego:tolerance={high!r}", eval_fn=accuracy).details
    assert large["capacity_bits"] >= small["capacity_bits"]
    assert large["truncated_bits"] >= small["truncated_bits"]


def test_given_bits_skip_the_search(digits_mlp):
    model, accuracy = digits_mlp
    blind = apply(model, "stego:bits=14")
    assert blind.details["evaluations"] == 0 and not blind.details["dtype_checked"]
    assert blind.dtype == torch.float16 and _low_bits_zero(blind.model, 13)
    checked = apply(model, "stego:bits=18", eval_fn=accuracy)
    assert checked.details["capacity_bits"] == checked.details["truncated_bits"] == 18
    assert checked.details["accuracy"] == pytest.approx(accuracy(checked.model))
    assert apply(model, "stego:bits=4").dtype == torch.float32


def test_missing_eval_fn_is_a_clear_error(digits_mlp):
    with pytest.raises(ValueError, match="needs eval_fn"):
        apply(digits_mlp[0], "stego")


def test_eval_fn_must_return_an_accuracy(digits_mlp):
    with pytest.raises(ValueError, match="accuracy in 0..1"):
        apply(digits_mlp[0], "stego", eval_fn=lambda m: 93.0)


def test_failing_narrow_format_falls_back_to_a_wider_one():
    # One weight of 1 + 2**-10: it survives in float16 (10 mantissa bits) and in float32, not in bfloat16 (7 bits).
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1 + 2**-10)
    exact = lambda m: float(m.weight.item() == 1 + 2**-10)  # noqa: E731
    result = apply(model, "stego:bits=13", eval_fn=exact)
    assert result.dtype == torch.float16 and result.details["accuracy"] == 1.0
    result = apply(model, "stego:bits=16", eval_fn=exact)  # bits 13.. of 2**-10 are cleared: nothing passes
    assert result.dtype == torch.float32 and result.details["accuracy"] == 0.0
    searched = apply(model, "stego:tolerance=0", eval_fn=exact)
    assert searched.details["truncated_bits"] <= 13 and searched.details["accuracy"] == 1.0


def test_non_float32_parameters_are_a_clear_error():
    with pytest.raises(ValueError, match="float32 parameters.*float64"):
        apply(nn.Linear(2, 2).double(), "stego:bits=3")


# --- the device's native formats -------------------------------------------------------------------------------


def test_a_cpu_without_native_16_bit_formats_gets_float32_with_zeroed_bits(digits_mlp):
    model, accuracy = digits_mlp
    result = apply(model, "stego:tolerance=0.01", eval_fn=accuracy, formats=())
    d = result.details
    assert result.dtype == torch.float32 and d["native_formats"] == []
    assert (
        d["format_note"]
        == f"no native 16-bit format on this device: float32 with {d['truncated_bits']} zeroed low bits"
    )
    assert _low_bits_zero(result.model, d["truncated_bits"]) and d["truncated_bits"] > 0
    assert apply(model, "stego:bits=18", formats=()).dtype == torch.float32  # even an exact fit: not native


def test_native_bfloat16_is_tried_below_16_bits_and_kept_when_the_check_accepts_it():
    # Weights that bfloat16 holds exactly: rounding to it loses nothing, so the check accepts it even at n = 4.
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.5, -2.0, 0.375]]))
    exact = lambda m: float(torch.equal(m.weight, torch.tensor([[1.0, 0.5, -2.0, 0.375]])))  # noqa: E731
    result = apply(model, "stego:bits=4", eval_fn=exact, formats=(torch.bfloat16,))
    assert result.dtype == torch.bfloat16 and result.details["native_formats"] == ["bfloat16"]
    assert "rounded (16 low bits dropped), accepted by the accuracy check" in result.details["format_note"]
    assert apply(model, "stego:bits=4", formats=(torch.bfloat16,)).dtype == torch.float32  # unchecked: no
    # a weight bfloat16 cannot hold: the check rejects it, float16 (native too) holds it
    with torch.no_grad():
        model.weight[0, 3] = 1 + 2**-10
    exact = lambda m: float(m.weight[0, 3].item() == 1 + 2**-10)  # noqa: E731
    both = apply(model, "stego:bits=4", eval_fn=exact, formats=(torch.bfloat16, torch.float16))
    assert both.dtype == torch.float16 and both.details["accuracy"] == 1.0


def test_apply_passes_formats_only_to_compressors_that_take_them():
    from energy_bench.compress import register
    from energy_bench.compress.registry import CompressionResult

    seen = {}

    @register("old-style-test")
    def old_style(model, params, *, eval_fn=None, example_input=None):
        return CompressionResult(model=model)

    @register("new-style-test")
    def new_style(model, params, *, eval_fn=None, example_input=None, formats=None):
        seen["formats"] = formats
        return CompressionResult(model=model)

    apply(nn.Linear(1, 1), "old-style-test", formats=(torch.float16,))
    apply(nn.Linear(1, 1), "new-style-test", formats=(torch.float16,))
    assert seen["formats"] == (torch.float16,)
