"""Energy to the baseline's accuracy: the target, its source, the warm-up, and the study's benchmarks end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import copy

from energy_bench.compress import parse_spec
from energy_bench.study import data, profiles, zoo
from energy_bench.study.suite import Study, StudyConfig

BENCHMARKS = Path(__file__).parents[2] / "benchmarks" / "test_compression.py"


#: the smoke profile shrunk to seconds: tiny images, batches and evaluation sets
TINY = {
    "image_size": 16,
    "batch_size": 8,
    "test_samples": 64,
    "eval_batch_size": 64,
    "inference_samples": 16,
    "recalibration_samples": 64,
}


@pytest.fixture(scope="module")
def study():
    profile = replace(profiles.get_profile("smoke", rounds="2"), **TINY)
    config = StudyConfig(profile, ("resnet18",), (), data.check_source("digits"), "random")
    return Study(config, torch.device("cpu"))


def _benchmark_path(study, spec_text):
    """What test_train does around energy(): a fresh copy, its trainer's warm-up round, then the profile's rounds."""
    compressed = study.compressed("resnet18", parse_spec(spec_text))
    model = study.fresh_copy(compressed)
    trainer = study.trainer(model, "resnet18", dtype=study.train_dtype(compressed))
    trainer.warm_up_round()
    for _ in range(study.profile.rounds):
        trainer.train_one_round()
    return study.evaluate(model, "resnet18"), trainer.rounds_done


def test_target_without_the_baseline_benchmark_matches_the_benchmark(study):
    study._baseline.clear()
    unmeasured = study.target("resnet18")
    assert "unmeasured" in unmeasured.source
    assert unmeasured.tolerance == pytest.approx(0.01) and unmeasured.baseline_rounds == 2
    assert unmeasured.accuracy == pytest.approx(unmeasured.baseline_accuracy - 0.01)
    assert study.target("resnet18") == unmeasured  # cached for the session
    # The benchmark's own path (with its warm-up on a throwaway copy) ends at the same accuracy: same seeds,
    # same batches, and the warm-up's round counts for nothing.
    accuracy, rounds = _benchmark_path(study, "baseline")
    assert accuracy == unmeasured.baseline_accuracy
    study.note_baseline("resnet18", accuracy, rounds - 1, "t.py::short")  # not all its rounds: ignored
    assert study.target("resnet18").source == unmeasured.source
    study.note_baseline("resnet18", accuracy, rounds, "t.py::test_train[resnet18-baseline]")
    noted = study.target("resnet18")
    assert noted.source == "baseline benchmark t.py::test_train[resnet18-baseline]"
    assert noted.accuracy == unmeasured.accuracy
    assert noted.describe()["baseline_accuracy"] == accuracy


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_warm_up_round_leaves_no_trace(study, optimizer):
    """After the warm-up round, training goes exactly as without it: weights, BatchNorm buffers, optimizer state,
    random state (dropout) and the round counter are back where they were; the optimizer state stays allocated."""
    from energy_bench.study import train

    def trainer(model):
        torch.manual_seed(0)
        return train.Trainer(
            model,
            study.data("googlenet"),
            device=torch.device("cpu"),
            batch_size=4,
            optimizer=optimizer,
            lr=0.01,
            weight_decay=0.01,
            steps=2,
            seed=0,
        )

    torch.manual_seed(0)
    model = zoo.build_model("googlenet", 10, 16)  # BatchNorm and dropout
    fresh = trainer(copy.deepcopy(model))  # seeded: each trainer draws from the same global random state
    fresh_losses = [fresh.train_one_round() for _ in range(2)]
    warmed = trainer(copy.deepcopy(model))
    warmed.warm_up_round()
    assert warmed.rounds_done == 0 and len(warmed.optimizer.state) > 0
    for key, value in model.state_dict().items():
        assert torch.equal(warmed.model.state_dict()[key], value), key
    assert [warmed.train_one_round() for _ in range(2)] == fresh_losses
    for key, value in fresh.model.state_dict().items():
        assert torch.equal(warmed.model.state_dict()[key], value), key


def test_compression_recalibrates_batchnorm(study):
    compressed = study.compressed("resnet18", parse_spec("prune-structured:amount=0.3"))
    recal = compressed.info["compressor_details"]["batchnorm_recalibration"]
    assert recal == {"layers": 20, "train_samples": study.profile.recalibration_samples}
    bn = compressed.model.bn1
    images = study.data("resnet18").train.tensors[0][: study.profile.recalibration_samples]
    with torch.no_grad():
        expected = compressed.model.conv1(images).mean(dim=(0, 2, 3))
    assert torch.allclose(bn.running_mean, expected, atol=1e-4)  # statistics of the pruned model's own inputs


def _saved(pytester) -> dict:
    files = sorted((pytester.path / ".benchmarks").rglob("*.json"))
    data = json.loads(files[-1].read_text())
    return {b["name"]: b for b in data["benchmarks"]}


def test_study_benchmarks_fine_tune_to_the_baselines_accuracy(pytester, monkeypatch, tmp_path):
    """The real benchmark file, with the baseline selected after another compressor: the target comes from an
    unmeasured fine-tuning first, then from the baseline's benchmark, and both agree."""
    monkeypatch.setenv("ENERGY_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(profiles.PROFILES, "smoke", replace(profiles.PROFILES["smoke"], **TINY))  # in-process run
    pytester.makepyfile(test_compression=BENCHMARKS.read_text())
    result = pytester.runpytest(
        "-p",
        "energy_bench.study",
        "-p",
        "no:cacheprovider",
        "--energy-meter=estimate",
        "--energy-device=cpu",
        "--energy-weights=random",
        "--energy-models=resnet18",
        "--energy-compressors=prune:amount=0.3,baseline",
        "--energy-rounds=2",
        "--energy-max-rounds=3",
        "--benchmark-autosave",
    )
    assert result.ret == 0, result.stdout.str()
    benches = _saved(pytester)
    base = benches["test_train[resnet18-baseline]"]["extra_info"]
    pruned = benches["test_train[resnet18-prune:amount=0.3]"]["extra_info"]
    assert "unmeasured" in pruned["target"]["source"]
    assert base["target"]["source"].startswith("baseline benchmark ")
    assert pruned["target"]["accuracy"] == base["target"]["accuracy"]
    assert base["target"]["baseline_accuracy"] == base["accuracy"]
    to_target = base["energy"]["to_target"]
    assert to_target["reached"] and to_target["rounds_run"] == 2 and 1 <= to_target["rounds"] <= 2
    assert to_target["curve"]["value"][-1] == base["accuracy"]
    assert to_target["target"] == base["target"]["accuracy"]
    mine = pruned["energy"]["to_target"]
    assert mine["max_rounds"] == 3 and len(mine["curve"]["value"]) == mine["rounds"] == pruned["rounds_trained"]
    assert mine["reached"] == (mine["curve"]["value"][-1] >= mine["target"])
    assert pruned["accuracy"] == mine["curve"]["value"][-1] and "accuracy_before" in pruned
    inference = benches["test_inference[resnet18-prune:amount=0.3]"]["extra_info"]
    assert inference["accuracy"] == pruned["accuracy_before"]  # the model inference runs: as compressed
    result.stdout.fnmatch_lines(
        [
            "*energy-bench: energy per call*",
            "*energy-bench study: energy to the baseline's accuracy*",
            "resnet18: joules to accuracy >= *",
            "At equal accuracy (baseline's accuracy minus the tolerance, per model)*",
        ]
    )
