"""Compressor spec strings: parsing, canonical text, test ids, clear errors; the registry."""

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energy_bench import compress
from energy_bench.compress import COMPRESSORS, parse_spec, parse_specs
from energy_bench.compress.specs import SCHEMAS, Schema

fractions = st.floats(min_value=0.001, max_value=0.999, allow_nan=False)


@pytest.mark.parametrize(
    "text, canonical, test_id",
    [
        ("baseline", "baseline", "baseline"),
        ("stego", "stego:tolerance=0.01", "stego"),
        ("stego:tolerance=0.01", "stego:tolerance=0.01", "stego"),
        (" stego : tolerance = 0.02 ", "stego:tolerance=0.02", "stego:tolerance=0.02"),
        ("stego:bits=16", "stego:bits=16", "stego:bits=16"),
        ("prune", "prune:amount=0.5", "prune"),
        ("prune-structured", "prune-structured:amount=0.3", "prune-structured"),
        ("prune-structured:amount=0.5", "prune-structured:amount=0.5", "prune-structured:amount=0.5"),
        ("lowrank", "lowrank:rank=0.5", "lowrank"),
        ("lowrank:energy=0.9", "lowrank:energy=0.9", "lowrank:energy=0.9"),
        ("lowrank:rank=1", "lowrank:rank=1.0", "lowrank:rank=1.0"),
    ],
)
def test_canonical_text_and_id(text, canonical, test_id):
    spec = parse_spec(text)
    assert (spec.text, spec.id, str(spec)) == (canonical, test_id, canonical)
    assert parse_spec(spec.text) == spec


@pytest.mark.parametrize(
    "text, message",
    [
        ("gzip", "unknown compressor 'gzip'"),
        ("stego:foo=1", "unknown parameter 'foo=1'; valid parameters: tolerance"),
        ("stego:bits=24", "bits=24 is out of range"),
        ("stego:bits=-1", "out of range"),
        ("stego:bits=2.5", "is not an integer"),
        ("stego:tolerance=-0.1", "out of range"),
        ("stego:tolerance=abc", "is not a number"),
        ("prune:amount=0", "strictly between 0 and 1"),
        ("prune:amount=1.5", "strictly between 0 and 1"),
        ("prune-structured:amount=1", "strictly between 0 and 1"),
        ("lowrank:rank=0", "out of range"),
        ("lowrank:energy=inf", "out of range"),
        ("lowrank:rank=0.5;energy=0.9", "one parameter per spec (rank= or energy="),
        ("stego:tolerance=0.1;bits=3", "one parameter per spec"),
        ("baseline:x=1", "takes no parameters"),
        ("prune:", "has ':' but no parameter"),
        ("prune:amount", "unknown parameter"),
    ],
)
def test_invalid_specs_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match="^.*" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_spec(text)


def test_unknown_name_lists_every_compressor():
    with pytest.raises(ValueError) as info:
        parse_spec("quantize")
    for name in COMPRESSORS:
        assert name in str(info.value)


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(["prune", "prune-structured"]), fractions)
def test_amount_round_trips(name, amount):
    spec = parse_spec(f"{name}:amount={amount!r}")
    assert spec.params == {"amount": amount}
    assert parse_spec(spec.text) == spec
    assert (spec.id == name) == (amount == SCHEMAS[name].default[1])


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0)).filter(lambda v: v == v))
def test_amount_outside_open_interval_is_rejected(amount):
    with pytest.raises(ValueError):
        parse_spec(f"prune:amount={amount!r}")


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=-50, max_value=60))
def test_bits_range(bits):
    if 0 <= bits <= 23:
        assert parse_spec(f"stego:bits={bits}").params == {"bits": bits}
    else:
        with pytest.raises(ValueError, match="0..23"):
            parse_spec(f"stego:bits={bits}")


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", min_size=1, max_size=12))
def test_unknown_names_are_rejected(name):
    if name in SCHEMAS:
        assert parse_spec(name).name == name
    else:
        with pytest.raises(ValueError, match="valid compressors"):
            parse_spec(name)


def test_spec_list_keeps_order_and_drops_duplicates():
    specs = parse_specs("baseline, stego,prune:amount=0.5,prune,,lowrank:energy=0.9")
    assert [s.text for s in specs] == ["baseline", "stego:tolerance=0.01", "prune:amount=0.5", "lowrank:energy=0.9"]
    with pytest.raises(ValueError, match="no compressor specs"):
        parse_specs(" , ")


def test_list_compressors_and_custom_registration():
    assert compress.list_compressors() == COMPRESSORS
    schema = Schema((compress.Param("scale", float, lambda v: v > 0, "a positive number"),), ("scale", 1.0))

    @compress.register("scaled", schema=schema)
    def scaled(model, params, *, eval_fn=None, example_input=None):
        return compress.CompressionResult(model=model, details={"scale": params["scale"]})

    try:
        assert "scaled" in compress.list_compressors()
        result = compress.apply(object(), "scaled:scale=2")
        assert result.details == {"scale": 2.0} and result.spec.id == "scaled:scale=2.0"
        with pytest.raises(ValueError, match="positive"):
            parse_spec("scaled:scale=-1")
    finally:
        SCHEMAS.pop("scaled")
        compress.registry._REGISTRY.pop("scaled")


def test_import_does_not_load_torch():
    code = "import sys, energy_bench.compress as c; c.parse_spec('prune'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
