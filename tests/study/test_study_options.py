"""Study options are validated at configure time: usage errors (exit 4) that list what is valid."""

from __future__ import annotations

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
        (["--energy-epochs=0"], "--energy-epochs must be a positive integer"),
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
    profile = profiles.get_profile(None, epochs="2", batch_size="16")
    assert (profile.name, profile.rounds, profile.batch_size) == ("smoke", 2, 16)
    assert profiles.get_profile("paper").image_size == 224


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


def test_missing_pretrained_weights_skip_with_the_file_name(pytester, monkeypatch, tmp_path):
    pytest.importorskip("torchvision")
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
