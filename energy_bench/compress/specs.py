"""Compressor spec strings: parsing, validation and canonical form.

A spec is ``NAME`` or ``NAME:KNOB=VALUE`` (e.g. ``prune:amount=0.3``). Each compressor has exactly one knob per
spec, because ``--energy-compressors`` is itself a comma-separated list of specs. This module is pure Python (no
torch) so that pytest can validate options at configure time without paying for torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Number = int | float


@dataclass(frozen=True)
class Param:
    """One knob of a compressor: its type, default and the range it accepts."""

    name: str
    kind: type  # int or float
    check: Callable[[Number], bool]
    describe: str  # the accepted range, for error messages

    def convert(self, compressor: str, raw: str) -> Number:
        try:
            value = self.kind(raw) if self.kind is float else _parse_int(raw)
        except ValueError:
            kind = "a number" if self.kind is float else "an integer"
            raise ValueError(
                f"compressor {compressor!r}: {self.name}={raw!r} is not {kind} (expected {self.describe})"
            ) from None
        if (isinstance(value, float) and not math.isfinite(value)) or not self.check(value):
            raise ValueError(f"compressor {compressor!r}: {self.name}={raw} is out of range (expected {self.describe})")
        return value


def _parse_int(raw: str) -> int:
    value = float(raw)
    if not value.is_integer():
        raise ValueError(raw)
    return int(value)


@dataclass(frozen=True)
class Schema:
    """What a compressor accepts: its knobs (one may be given per spec) and the default knob."""

    params: tuple[Param, ...] = ()
    default: tuple[str, Number] | None = None  # (knob, value) used when the spec names none

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _fraction_open(v: Number) -> bool:
    return 0 < v < 1


def _fraction_half_open(v: Number) -> bool:
    return 0 < v <= 1


_AMOUNT = Param("amount", float, _fraction_open, "a fraction strictly between 0 and 1")

SCHEMAS: dict[str, Schema] = {
    "baseline": Schema(),
    "stego": Schema(
        (
            Param("tolerance", float, lambda v: v >= 0, "an accuracy drop >= 0, e.g. 0.01"),
            Param("bits", int, lambda v: 0 <= v <= 23, "an integer number of mantissa bits 0..23"),
        ),
        ("tolerance", 0.01),
    ),
    "prune": Schema((_AMOUNT,), ("amount", 0.5)),
    "prune-structured": Schema((_AMOUNT,), ("amount", 0.3)),
    "lowrank": Schema(
        (
            Param("rank", float, _fraction_half_open, "a fraction of each layer's full rank in (0, 1]"),
            Param("energy", float, _fraction_half_open, "a fraction of the spectral energy in (0, 1]"),
        ),
        ("rank", 0.5),
    ),
}

#: The built-in compressors, in the order the study runs them.
COMPRESSORS: tuple[str, ...] = ("baseline", "stego", "prune", "prune-structured", "lowrank")


def _format_value(value: Number) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


@dataclass(frozen=True)
class Spec:
    """A parsed compressor spec. ``text`` is canonical (default knob spelled out); ``id`` is short for test ids."""

    name: str
    params: Mapping[str, Number] = field(compare=False, hash=False)
    text: str = ""
    id: str = ""

    def __hash__(self) -> int:  # params is a dict; text identifies the spec completely
        return hash(self.text)

    def __str__(self) -> str:
        return self.text


def valid_specs_help() -> str:
    """One line listing every compressor with its knobs, for error messages and --help."""
    parts = []
    for name, schema in SCHEMAS.items():
        knobs = "|".join(f"{p.name}=..." for p in schema.params)
        parts.append(f"{name}[:{knobs}]" if knobs else name)
    return ", ".join(parts)


def parse_spec(text: str) -> Spec:
    """Parse ``NAME[:KNOB=VALUE]``; raise ValueError naming what is wrong and what is valid."""
    if not isinstance(text, str):
        raise ValueError(f"compressor spec must be a string, got {type(text).__name__}")
    raw = text.strip()
    name, sep, rest = raw.partition(":")
    name = name.strip()
    schema = SCHEMAS.get(name)
    if schema is None:
        raise ValueError(f"unknown compressor {name!r} in spec {text!r}; valid compressors: {valid_specs_help()}")
    params: dict[str, Number] = {}
    if sep and rest.strip():
        if not schema.params:
            raise ValueError(f"compressor {name!r} takes no parameters (got {rest.strip()!r})")
        items = [item for item in rest.replace(";", ",").split(",") if item.strip()]
        if len(items) > 1:
            knobs = " or ".join(f"{p.name}=" for p in schema.params)
            raise ValueError(
                f"compressor {name!r} takes one parameter per spec ({knobs}, not several), got {rest.strip()!r}"
            )
        key, eq, value = items[0].partition("=")
        key = key.strip()
        param = schema.param(key)
        if param is None or not eq:
            valid = ", ".join(f"{p.name} ({p.describe})" for p in schema.params)
            raise ValueError(f"compressor {name!r}: unknown parameter {items[0].strip()!r}; valid parameters: {valid}")
        params[key] = param.convert(name, value.strip())
    elif sep:
        raise ValueError(f"compressor spec {text!r} has ':' but no parameter; write {name!r} or {name}:KNOB=VALUE")
    if not params and schema.default is not None:
        key, value = schema.default
        params[key] = value
    canonical = name + "".join(f":{k}={_format_value(v)}" for k, v in params.items())
    is_default = schema.default is None or (params == {schema.default[0]: schema.default[1]})
    return Spec(name=name, params=params, text=canonical, id=name if is_default else canonical)


def parse_specs(text: str) -> tuple[Spec, ...]:
    """Parse a comma-separated list of specs (the --energy-compressors form); duplicates are dropped."""
    specs: dict[str, Spec] = {}
    for item in text.split(","):
        if item.strip():
            spec = parse_spec(item)
            specs.setdefault(spec.text, spec)
    if not specs:
        raise ValueError(f"no compressor specs in {text!r}; valid compressors: {valid_specs_help()}")
    return tuple(specs.values())


def add_schema(name: str, schema: Schema) -> None:
    """Make a user compressor's specs parseable (used by ``energy_bench.compress.register``)."""
    if not name or ":" in name or "," in name:
        raise ValueError(f"invalid compressor name {name!r}: must be non-empty without ':' or ','")
    SCHEMAS[name] = schema
