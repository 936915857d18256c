"""The uncompressed reference."""

from .registry import CompressionResult, register


@register("baseline")
def baseline(model, params, *, eval_fn=None, example_input=None) -> CompressionResult:
    return CompressionResult(model=model, details={})
