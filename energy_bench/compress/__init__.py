"""Model compressors behind one registry: baseline, stego, prune, prune-structured, lowrank.

``apply(model, "prune:amount=0.3", eval_fn=..., example_input=...)`` returns a ``CompressionResult``. Importing
this package does not import torch; the compressors load on first use.
"""

from .registry import CompressionResult, apply, get_compressor, list_compressors, register
from .specs import COMPRESSORS, Param, Schema, Spec, parse_spec, parse_specs, valid_specs_help

__all__ = [
    "COMPRESSORS",
    "CompressionResult",
    "Param",
    "Schema",
    "Spec",
    "apply",
    "get_compressor",
    "list_compressors",
    "parse_spec",
    "parse_specs",
    "register",
    "valid_specs_help",
]
