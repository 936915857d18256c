"""The study as benchmarks: every model x compressor, fine-tuned and then run for inference.

``test_train[resnet18-stego]``: each measured round is one training round (an epoch, or the profile's fixed number
of steps) of a fresh copy of the compressed model; afterwards its held-out accuracy is recorded. Group: the model.
``test_inference[resnet18-stego]``: each round forwards the profile's number of held-out images through the
(untrained) compressed model; the record adds joules per 1000 images. Group: ``<model>-inference``.

Select with --energy-models / --energy-compressors; size with --energy-profile, --energy-epochs,
--energy-batch-size; weights with --energy-weights; data with --energy-data.

``ENERGY_BENCH_TRAIN_STEPS=N`` (environment): N optimizer steps per training round instead of the profile's. A
controlled change for the field benchmarks of the gate (``benchmarks/field/``): 5 steps, then 6, makes every
training round 20 % heavier while nothing else changes.
"""

from __future__ import annotations

import functools
import os

import pytest

from energy_bench.study import train

TRAIN_STEPS_ENV = "ENERGY_BENCH_TRAIN_STEPS"


def train_steps_override() -> int | None:
    """Steps per training round from ``ENERGY_BENCH_TRAIN_STEPS``; None when unset."""
    value = os.environ.get(TRAIN_STEPS_ENV)
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        pytest.fail(f"{TRAIN_STEPS_ENV}={value!r}: expected a whole number of steps >= 1", pytrace=False)
    return int(value)


def _describe(benchmark, compressed) -> None:
    benchmark.extra_info.update(compressed.info)


def test_train(study, study_model, study_compressor, compressed_model, energy, benchmark):
    benchmark.group = study_model
    _describe(benchmark, compressed_model)
    model = study.fresh_copy(compressed_model)
    dtype = study.train_dtype(compressed_model)
    trainer = study.trainer(model, study_model, dtype=dtype)
    steps = train_steps_override()
    if steps is not None:
        trainer.steps = steps
    energy(trainer.train_one_round, rounds=study.profile.rounds, warmup_rounds=0, iterations=1)
    accuracy = study.evaluate(model, study_model, dtype=dtype)
    energy.record(
        accuracy=accuracy,
        loss=trainer.last_loss,
        rounds_trained=trainer.rounds_done,
        samples_per_round=len(trainer.order(0)),
    )


def test_inference(study, study_model, study_compressor, compressed_model, energy, benchmark):
    benchmark.group = f"{study_model}-inference"
    _describe(benchmark, compressed_model)
    profile = study.profile
    run = functools.partial(
        train.infer,
        compressed_model.model,
        study.data(study_model),
        device=study.device,
        samples=profile.inference_samples,
        batch_size=profile.eval_batch_size,
        dtype=study.train_dtype(compressed_model),
    )
    energy(run, rounds=profile.inference_rounds, warmup_rounds=1, iterations=1)
    record = benchmark.extra_info.get("energy", {})
    more = {"images_per_round": profile.inference_samples}
    if "joules" in record:
        more["joules_per_1000_images"] = record["joules"]["mean"] * 1000 / profile.inference_samples
    energy.record(**more)
