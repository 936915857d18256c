"""The study's pytest plugin: its options, the parametrization over models and compressors, its fixtures.

Registered only where asked: ``-p energy_bench.study`` on the command line, or ``pytest_plugins =
["energy_bench.study"]`` in a root conftest.py (as this repository's does for ``benchmarks/``). It imports nothing
heavy at import time: torch, torchvision and scikit-learn load inside the fixtures. Bad study options are usage
errors at configure time (exit code 4); data that cannot be used (fewer than two classes, too few images for the
splits or for --energy-batch-size, an unreadable image) is one after collection, when study tests were collected,
before any test runs.

Tests opt in by naming arguments: ``study_model`` (parametrized over --energy-models), ``study_compressor``
(over --energy-compressors, a parsed Spec); fixtures ``study`` (session state), ``pretrained_model``,
``compressed_model``.
"""

from __future__ import annotations

from typing import Any

import pytest

from energy_bench.errors import EnergyBenchWarning
from energy_bench.plugin import options

from . import data, profiles, weights, zoo
from .suite import Study, StudyConfig

GROUP = ("energy-bench-study", "energy-bench study (loaded with -p energy_bench.study)")

OPTIONS: list[options.Option] = [
    ("--energy-profile", "energy_profile", "study profile: smoke (CPU-sized, default) or paper (GPU).", {}),
    ("--energy-models", "energy_models", "comma-separated study models (default: all nine).", {}),
    (
        "--energy-compressors",
        "energy_compressors",
        "comma-separated compressor specs, e.g. baseline,stego,prune:amount=0.5 (default: all five, as the profile "
        "sets them).",
        {},
    ),
    (
        "--energy-data",
        "energy_data",
        "study data: digits (default), an ImageFolder path, or NAME:ROOT for a torchvision data set.",
        {},
    ),
    ("--energy-weights", "energy_weights", "study weights: pretrained|self|random|PATH (default: the profile's).", {}),
    (
        "--energy-rounds",
        "energy_rounds",
        "the baseline's fine-tuning rounds, which define each model's target accuracy (default: the profile's).",
        {},
    ),
    ("--energy-epochs", "energy_epochs", "deprecated alias of --energy-rounds (a round need not be an epoch).", {}),
    (
        "--energy-max-rounds",
        "energy_max_rounds",
        "cap on a compressor's fine-tuning rounds to the target; 'not reached' past it (default: the profile's).",
        {},
    ),
    (
        "--energy-accuracy-tolerance",
        "energy_accuracy_tolerance",
        "target = the baseline's accuracy after its rounds minus this many points, e.g. 0.5pt (default 1pt).",
        {},
    ),
    ("--energy-batch-size", "energy_batch_size", "training batch size, overriding the profile.", {}),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser, OPTIONS, GROUP)


STUDY_CONFIG_KEY = pytest.StashKey[StudyConfig]()
#: image size -> StudyData loaded (and checked) after collection, handed to the session's Study
STUDY_DATA_KEY = pytest.StashKey[dict]()


class EnergyBenchDeprecation(EnergyBenchWarning, DeprecationWarning):
    """A study option that still works under an old name."""


def read_config(config: pytest.Config) -> StudyConfig:
    """Validate every study option; ValueError with a one-line message on the first bad one."""
    from energy_bench.compress import parse_specs

    profile = profiles.get_profile(
        options.get(config, "energy_profile"),
        rounds=rounds_option(config),
        max_rounds=options.get(config, "energy_max_rounds"),
        batch_size=options.get(config, "energy_batch_size"),
        tolerance=options.get(config, "energy_accuracy_tolerance"),
    )
    models_text = options.get(config, "energy_models")
    models = zoo.parse_models(models_text) if models_text else zoo.MODEL_NAMES
    specs_text = options.get(config, "energy_compressors")
    try:
        compressors = parse_specs(specs_text or profile.compressors)
    except ValueError as exc:
        raise ValueError(f"--energy-compressors: {exc}") from None
    return StudyConfig(
        profile=profile,
        models=models,
        compressors=compressors,
        data=data.check_source(options.get(config, "energy_data")),
        weights=weights.check_option(options.get(config, "energy_weights")),
    )


def rounds_option(config: pytest.Config) -> str | None:
    """--energy-rounds, or its deprecated alias --energy-epochs (with a warning); the new name wins."""
    rounds, epochs = options.get(config, "energy_rounds"), options.get(config, "energy_epochs")
    if epochs in (None, ""):
        return rounds
    message = "--energy-epochs (energy_epochs) is deprecated: use --energy-rounds (energy_rounds)"
    if rounds not in (None, ""):
        message += f"; --energy-rounds={rounds} wins over --energy-epochs={epochs}"
    config.issue_config_time_warning(EnergyBenchDeprecation(message), stacklevel=2)
    if rounds not in (None, ""):
        return rounds
    return str(profiles.positive_int("--energy-epochs", epochs))  # the error names the option given


def pytest_configure(config: pytest.Config) -> None:
    try:
        config.stash[STUDY_CONFIG_KEY] = read_config(config)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Load the study's data once study tests are collected: data that cannot be used is a usage error now."""
    config = session.config
    study_config = config.stash.get(STUDY_CONFIG_KEY, None)
    if study_config is None or config.option.collectonly:
        return
    if not any("study" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    profile = study_config.profile
    try:
        loaded = data.load_data(
            study_config.data,
            profile.image_size,
            seed=profile.seed,
            test_fraction=profile.test_fraction,
            num_workers=profile.num_workers,
        )
        data.check_usable(loaded, profile.batch_size)
    except data.DataError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[STUDY_DATA_KEY] = {profile.image_size: loaded}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    study_config = metafunc.config.stash.get(STUDY_CONFIG_KEY, None)
    if study_config is None:
        return
    if "study_model" in metafunc.fixturenames:
        metafunc.parametrize("study_model", study_config.models)
    if "study_compressor" in metafunc.fixturenames:
        metafunc.parametrize(
            "study_compressor", study_config.compressors, ids=[spec.id for spec in study_config.compressors]
        )


@pytest.hookimpl(optionalhook=True)
def pytest_energy_shard_key(item: pytest.Item) -> str | None:
    """Under --energy-shard, a model's benchmarks share a shard, and with it the model's cached copies."""
    callspec = getattr(item, "callspec", None)
    model = callspec.params.get("study_model") if callspec is not None else None
    return None if model is None else str(model)


@pytest.fixture(scope="session")
def study_config(pytestconfig: pytest.Config) -> StudyConfig:
    return pytestconfig.stash[STUDY_CONFIG_KEY]


@pytest.fixture(scope="session")
def study(study_config: StudyConfig, energy_device: Any, pytestconfig: pytest.Config) -> Study:
    """Session state of the study: data, pretrained and compressed models, cached model by model."""
    return Study(study_config, energy_device, data=pytestconfig.stash.get(STUDY_DATA_KEY, None))


def _weights_or_skip(study: Study, name: str) -> tuple[Any, dict]:
    from .weights import WeightsError, WeightsUnavailable

    try:
        return study.pretrained(name)
    except WeightsUnavailable as exc:
        pytest.skip(str(exc))
    except WeightsError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def pretrained_model(study: Study, study_model: str) -> Any:
    """A private copy of the pretrained ``study_model`` (head for the data set's classes) on the study device.

    Weights per --energy-weights; missing torchvision weights offline skip the test, unusable files fail it.
    """
    import copy

    model, _ = _weights_or_skip(study, study_model)
    return copy.deepcopy(model)


@pytest.fixture
def compressed_model(study: Study, study_model: str, study_compressor: Any) -> Any:
    """The session's compressed ``study_model`` (a ``suite.Compressed``: .model, .dtype, .info).

    Shared by the session's tests: copy it before training."""
    _weights_or_skip(study, study_model)
    return study.compressed(study_model, study_compressor)


# ---------------------------------------------------------------------------- the study's verdict


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config):
    # Outermost wrapper: printed after pytest-benchmark's table and the harness's energy table.
    try:
        return (yield)
    finally:
        write_study_summary(terminalreporter, config)


def write_study_summary(terminalreporter, config: pytest.Config) -> None:
    """Each model's compressors ranked by joules to the baseline's accuracy, and what saved energy."""
    from energy_bench.runs import ranking

    bench_session = getattr(config, "_benchmarksession", None)
    if bench_session is None or STUDY_CONFIG_KEY not in config.stash:
        return
    studied = [b for b in bench_session.benchmarks if b and isinstance(b.extra_info.get("compressor"), str)]
    rankings = ranking.rank(studied)
    if not ranking.summary_lines(rankings):
        return
    terminalreporter.ensure_newline()
    terminalreporter.write_sep("-", "energy-bench study: energy to the baseline's accuracy")
    for line in ranking.render_rankings(rankings).splitlines():
        terminalreporter.write_line(line)
