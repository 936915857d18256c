"""The study as benchmarks: every model x compressor, fine-tuned to the baseline's accuracy, then run for inference.

``test_train[resnet18-stego]`` (group: the model): the paper's question, energy to a model of the same quality. The
target is the baseline's held-out accuracy after its fixed rounds (--energy-rounds) minus a tolerance
(--energy-accuracy-tolerance, 1pt); every compressor fine-tunes round by round from its compressed state until its
accuracy reaches the target, or --energy-max-rounds pass ("not reached", with the accuracy it got). The record's
``extra_info.energy.to_target`` holds the joules and seconds to the target and the accuracy after every round; the
baseline's own joules to target come from its curve. Each benchmark first trains one unmeasured warm-up round, then
puts the model, optimizer and random state back (``Trainer.warm_up_round``).

``test_inference[resnet18-stego]`` (group ``<model>-inference``): each round forwards the profile's number of
held-out images through the compressed model (as compressed, not fine-tuned); the record adds joules per 1000 images
and that model's accuracy.

Select with --energy-models / --energy-compressors; size with --energy-profile, --energy-rounds,
--energy-max-rounds, --energy-batch-size; weights with --energy-weights; data with --energy-data.

``ENERGY_BENCH_TRAIN_STEPS=N`` (environment): N optimizer steps per training round instead of the profile's, for
every trainer of the session (the warm-up's and the target's too). A controlled change for the field benchmarks of
the gate (``benchmarks/field/``): 5 steps, then 6, makes every training round 20 % heavier while nothing else
changes.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import replace

import pytest

from energy_bench.runs import record as records
from energy_bench.runs.footprint import add_footprint, from_record
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


def test_train(study, study_model, study_compressor, compressed_model, energy, benchmark, request):
    benchmark.group = study_model
    _describe(benchmark, compressed_model)
    steps = train_steps_override()
    if steps is not None and study.profile.steps_per_round != steps:
        study.profile = replace(study.profile, steps_per_round=steps)  # every trainer of the session
    profile = study.profile
    dtype = study.train_dtype(compressed_model)
    before = study.accuracy_before(study_model, study_compressor, compressed_model)
    model = study.fresh_copy(compressed_model)
    trainer = study.trainer(model, study_model, dtype=dtype)
    trainer.warm_up_round()  # unmeasured, and undone: the measured rounds start from the compressed state
    baseline = study_compressor.name == "baseline"
    target = None if baseline else study.target(study_model)
    # The baseline's rounds are fixed (they define the target): its watch records accuracy and never stops it.
    watch = energy.target(
        lambda: study.evaluate(model, study_model, dtype=dtype),
        at_least=math.inf if baseline else target.accuracy,
    )
    rounds = profile.rounds if baseline else profile.max_rounds
    energy(trainer.train_one_round, rounds=rounds, warmup_rounds=0, iterations=1, until=watch)
    accuracy = watch.values[-1] if watch.values else study.evaluate(model, study_model, dtype=dtype)
    if baseline:
        study.note_baseline(study_model, accuracy, trainer.rounds_done, request.node.nodeid)
        target = study.target(study_model)
        _retarget(benchmark, target.accuracy, rounds)
    benchmark.extra_info["target"] = target.describe()
    energy.record(
        accuracy=accuracy,
        accuracy_before=before,
        loss=trainer.last_loss,
        rounds_trained=trainer.rounds_done,
        samples_per_round=len(trainer.order(0)),
    )


def _retarget(benchmark, threshold: float, rounds: int) -> None:
    """The baseline's joules to its own target: from its curve, once the target is known."""
    record = benchmark.extra_info.get("energy")
    if not isinstance(record, dict) or "to_target" not in record:
        return
    old = record["to_target"]
    target = {"metric": old.get("metric", "accuracy"), "target": threshold, "direction": "at_least"}
    record["to_target"] = records.target_from_curve(old["curve"], target, rounds)
    add_footprint(record, from_record(record))


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
    more = {
        "images_per_round": profile.inference_samples,
        "accuracy": study.accuracy_before(study_model, study_compressor, compressed_model),
    }
    if "joules" in record:
        more["joules_per_1000_images"] = record["joules"]["mean"] * 1000 / profile.inference_samples
    energy.record(**more)
