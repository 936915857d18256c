"""Study options are validated at configure time: usage errors (exit 4) that list what is valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from energy_bench.study import profiles, zoo

TEST_FILE = """
def test_ids(study_model, study_compressor):
    pass
"""


def run_with_study(pytester, *args):
    """pytest in the test project with the study plugin switched on, as a user of the study would."""
    return pytester.runpytest("-p", "energy_bench.study", *args)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--energy-models=resnet18,bogus"], "unknown model(s) 'bogus'; valid models: densenet121, resnet18,"),
        (["--energy-compressors=baseline,squash"], "--energy-compressors: unknown compressor 'squash'"),
        (["--energy-profile=huge"], "unknown --energy-profile 'huge'; valid profiles: smoke, paper"),
        (["--energy-rounds=0"], "--energy-rounds must be a positive integer"),
        (["--energy-epochs=0"], "--energy-epochs must be a positive integer"),
        (["--energy-max-rounds=two"], "--energy-max-rounds must be a positive integer, got 'two'"),
        (["--energy-accuracy-tolerance=1%"], "--energy-accuracy-tolerance must be accuracy points such as 1pt"),
        (["--energy-accuracy-tolerance=-1pt"], "--energy-accuracy-tolerance must be between 0pt and 100pt"),
        (["--energy-batch-size=x"], "--energy-batch-size must be a positive integer"),
        (["--energy-data=imagenet"], "unknown data set 'imagenet'"),
        (["--energy-weights=/no/such.pt"], "--energy-weights=/no/such.pt: not one of pretrained, self, random"),
    ],
)
def test_bad_options_are_usage_errors(pytester, args, message):
    pytester.makepyfile(TEST_FILE)
    result = run_with_study(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


@pytest.fixture
def study_libraries():
    """Import what a study run loads before pytester snapshots sys.modules (it drops modules imported inside)."""
    for name in ("torch", "torchvision", "sklearn.datasets", "PIL.Image"):
        pytest.importorskip(name)


def _pets(root, classes=("cat", "dog"), bad=False):
    from PIL import Image

    for cls in classes:
        (root / cls).mkdir(parents=True)
        for j in range(3):
            Image.new("L", (10, 10), color=j).save(root / cls / f"{j}.png")
    if bad:
        (root / classes[-1] / "2.png").write_bytes(b"not an image")
    return root


@pytest.mark.parametrize(
    "case, message",
    [
        ("batch", "ERROR: --energy-batch-size=5000 is larger than the training split of digits (1438 images)*"),
        ("small", "ERROR: --energy-batch-size=32 is larger than the training split of */pets (5 images)*"),
        ("corrupt", "ERROR: --energy-data=*/pets: cannot read image */pets/dog/2.png (*"),
        ("one-class", "ERROR: --energy-data=*/pets: */pets' has one class (cat)*"),
    ],
)
def test_unusable_data_is_a_usage_error_before_any_test(study_libraries, pytester, case, message):
    pytester.makepyfile("""
        def test_study(study, study_model, energy):
            raise AssertionError("not reached")
    """)
    pets = pytester.path / "pets"
    if case == "batch":
        args = ["--energy-batch-size=5000"]
    elif case == "small":
        args = [f"--energy-data={_pets(pets)}"]
    elif case == "corrupt":
        args = [f"--energy-data={_pets(pets, bad=True)}", "--energy-batch-size=1"]
    else:
        args = [f"--energy-data={_pets(pets, classes=('cat',))}"]
    result = run_with_study(pytester, "--energy-models=resnet18", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str() and "not reached" not in result.stdout.str()


def test_parametrization_ids_and_selection(pytester):
    pytester.makepyfile(TEST_FILE)
    result = run_with_study(
        pytester,
        "--collect-only",
        "-q",
        "--energy-models=vgg16,resnet18",
        "--energy-compressors=stego,prune:amount=0.3",
    )
    assert result.ret == 0
    ids = [line.split("[")[1].rstrip("]") for line in result.outlines if "[" in line]
    assert ids == ["vgg16-stego", "vgg16-prune:amount=0.3", "resnet18-stego", "resnet18-prune:amount=0.3"]


def test_defaults_cover_every_model_and_compressor(pytester):
    pytester.makepyfile(TEST_FILE)
    result = run_with_study(pytester, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*45 tests collected*"])


def test_profile_overrides():
    profile = profiles.get_profile(None, rounds="2", max_rounds="9", batch_size="16", tolerance="0.5pt")
    assert (profile.name, profile.rounds, profile.max_rounds, profile.batch_size) == ("smoke", 2, 9, 16)
    assert profile.accuracy_tolerance == pytest.approx(0.005)
    assert profiles.get_profile(None).accuracy_tolerance == pytest.approx(0.01)  # 1pt by default
    assert profiles.get_profile("paper").image_size == 224


@pytest.mark.parametrize("text, fraction", [("1pt", 0.01), ("2.5 pt", 0.025), ("0", 0.0), ("1", 0.01)])
def test_tolerance_is_in_accuracy_points(text, fraction):
    assert profiles.parse_tolerance(text) == pytest.approx(fraction)


ROUNDS_TEST = """
def test_rounds(study_config):
    print("ROUNDS", study_config.profile.rounds, study_config.profile.max_rounds)
"""


def test_energy_epochs_is_a_deprecated_alias_of_energy_rounds(pytester):
    pytester.makepyfile(ROUNDS_TEST)
    result = run_with_study(pytester, "-s", "--energy-epochs=3")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*ROUNDS 3 *", "*--energy-epochs (energy_epochs) is deprecated: use --energy-rounds*"])
    result = run_with_study(pytester, "-s", "--energy-epochs=3", "--energy-rounds=4", "--energy-max-rounds=6")
    result.stdout.fnmatch_lines(["*ROUNDS 4 6*", "*--energy-rounds=4 wins over --energy-epochs=3*"])


def test_rounds_options_have_ini_twins(pytester):
    pytester.makepyfile(ROUNDS_TEST)
    pytester.makeini("[pytest]\nenergy_rounds = 2\nenergy_max_rounds = 7\nenergy_accuracy_tolerance = 2pt\n")
    result = run_with_study(pytester, "-s")
    result.stdout.fnmatch_lines(["*ROUNDS 2 7*"])
    assert "deprecated" not in result.stdout.str()


def test_model_sizes():
    assert zoo.MODEL_NAMES[0] == "densenet121" and len(zoo.MODEL_NAMES) == 9
    assert zoo.input_size("inception_v3", 32) == 75
    assert zoo.input_size("alexnet", 32) == 63
    assert zoo.input_size("vit_b_16", 40) == 48
    assert zoo.input_size("resnet18", 224) == 224


@pytest.mark.parametrize("name", ["googlenet", "inception_v3", "alexnet", "vit_b_16", "densenet121"])
def test_models_build_at_their_minimum_size(name):
    torch = pytest.importorskip("torch")
    size = zoo.input_size(name, 1)
    model = zoo.build_model(name, 7, size).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, size, size)).shape == (1, 7)
    assert zoo.head_module(name, model).out_features == 7


def test_missing_pretrained_weights_skip_with_the_file_name(study_libraries, pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ENERGY_BENCH_OFFLINE", "1")
    pytester.makepyfile("""
        def test_uses_weights(pretrained_model):
            raise AssertionError("not reached")
    """)
    result = run_with_study(
        pytester, "-rs", "--energy-models=alexnet", "--energy-weights=pretrained", "--energy-device=cpu"
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*alexnet-owt-7be5be79.pth is missing*energy-bench fetch-weights alexnet*"])


def test_benchmarks_run_model_by_model_with_the_baselines_training_first(pytester):
    """benchmarks/conftest.py: the baseline's training benchmark defines the target, so it runs first per model."""
    benchmarks = Path(__file__).parents[2] / "benchmarks"
    result = pytester.runpytest(
        str(benchmarks / "test_compression.py"),
        "--collect-only",
        "-q",
        "-p",
        "no:cacheprovider",
        "--energy-models=vgg16,resnet18",
        "--energy-compressors=stego,baseline",
    )
    assert result.ret == 0, result.stdout.str()
    ids = [line.split("::")[1] for line in result.outlines if "::" in line]
    assert ids == [
        "test_train[vgg16-baseline]",
        "test_train[vgg16-stego]",
        "test_inference[vgg16-stego]",
        "test_inference[vgg16-baseline]",
        "test_train[resnet18-baseline]",
        "test_train[resnet18-stego]",
        "test_inference[resnet18-stego]",
        "test_inference[resnet18-baseline]",
    ]


def test_smoke_profile_runs_its_tuned_compressors_by_default():
    from energy_bench.compress import parse_specs

    specs = parse_specs(profiles.get_profile("smoke").compressors)
    assert [s.name for s in specs] == ["baseline", "stego", "prune", "prune-structured", "lowrank"]
    assert [s.text for s in specs][2:] == ["prune:amount=0.3", "prune-structured:amount=0.15", "lowrank:rank=0.75"]
    paper = parse_specs(profiles.get_profile("paper").compressors)
    assert [s.id for s in paper] == ["baseline", "stego", "prune", "prune-structured", "lowrank"]  # library defaults
