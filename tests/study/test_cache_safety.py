"""Faults in the study's caches: planted files never run, full or read-only disks keep the work, bad files rebuild.

Small on purpose: resnet18 at 16 px on digits, one pretraining step, unstructured pruning (the quickest compressor
with an effect); the structure recipes of lowrank and structured pruning are checked on a tiny net.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from energy_bench.compress import apply, parse_spec
from energy_bench.errors import EnergyBenchWarning
from energy_bench.study import cache, data, profiles, stored, suite, weights
from energy_bench.study.suite import Study, StudyConfig

MODEL = "resnet18"
PROFILE = dataclasses.replace(
    profiles.get_profile("smoke"), image_size=16, test_samples=16, eval_batch_size=16, pretrain_steps=1, batch_size=4
)


class Payload:
    """Unpickling this creates ``marker``: what a planted file would do if anything loaded it with pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant(path, marker):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": Payload(marker), "details": {}, "dtype": torch.float32, "seconds": 9.0}, path)
    # the payload is live: an unsafe load of a copy runs it (so the tests below could fail)
    probe = path.with_name("probe.pt")
    shutil.copy(path, probe)
    torch.load(probe, weights_only=False)
    assert os.path.exists(marker)
    os.remove(marker)
    probe.unlink()


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("ENERGY_BENCH_CACHE", str(root))
    monkeypatch.setattr(suite, "CACHE_MIN_SECONDS", 0.0)  # store even quick compressions
    return root


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / f"{MODEL}.pt"
    torch.manual_seed(0)
    torch.save(torchvision.models.get_model(MODEL, weights=None, num_classes=10).state_dict(), path)
    return path


def make_study(weights_source, spec="prune"):
    config = StudyConfig(PROFILE, (MODEL,), (parse_spec(spec),), data.check_source("digits"), str(weights_source))
    return Study(config, torch.device("cpu"))


SPEC = parse_spec("prune")


@pytest.fixture(scope="module")
def warm(tmp_path_factory, weights_file):
    """A cache holding one compressed model, computed once for the module: (cache folder, the Compressed)."""
    root = tmp_path_factory.mktemp("warm") / "cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENERGY_BENCH_CACHE", str(root))
        mp.setattr(suite, "CACHE_MIN_SECONDS", 0.0)
        compressed = make_study(weights_file).compressed(MODEL, SPEC)
    assert compressed.info["compress_cached"] is False
    return root, compressed


@pytest.fixture
def warm_copy(warm, cache_root):
    shutil.copytree(warm[0], cache_root)
    return cache_root


def cache_file(study, spec):
    ident = study._compressed_ident(MODEL, spec, study.pretrained(MODEL)[1])
    return study._compressed_cache_path(MODEL, spec, ident)


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------------- compressed models


def test_compressed_model_round_trips_as_data(warm, warm_copy, weights_file):
    again = make_study(weights_file).compressed(MODEL, SPEC)
    assert again.info["compress_cached"] is True
    assert same_weights(warm[1].model, again.model)
    assert again.info["compressor_details"] == warm[1].info["compressor_details"]
    # the file holds tensors and JSON only
    payload = torch.load(next((warm_copy / "compressed").iterdir()), weights_only=True)
    assert set(payload) == {"format", "meta", "state"} and isinstance(payload["meta"], str)


def test_planted_pickle_in_the_compressed_cache_never_runs(cache_root, weights_file, tmp_path):
    study = make_study(weights_file)
    path = cache_file(study, SPEC)
    marker = tmp_path / "pwned"
    plant(path, marker)
    with pytest.warns(EnergyBenchWarning, match="unreadable or corrupt.*removed, rebuilding"):
        compressed = study.compressed(MODEL, SPEC)
    assert not marker.exists()
    assert compressed.info["compress_cached"] is False
    assert torch.load(path, weights_only=True)["format"] == stored.FORMAT  # replaced by the real one


def test_truncated_compressed_file_is_rebuilt(warm_copy, weights_file):
    (path,) = (warm_copy / "compressed").iterdir()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.warns(EnergyBenchWarning, match="unreadable or corrupt"):
        rebuilt = make_study(weights_file).compressed(MODEL, SPEC)
    assert rebuilt.info["compress_cached"] is False
    assert make_study(weights_file).compressed(MODEL, SPEC).info["compress_cached"] is True


def test_cache_keys_are_content_based(warm_copy, weights_file, tmp_path, monkeypatch):
    # the cache and the weights file both move: still the same compression
    moved_cache, moved_weights = tmp_path / "elsewhere", tmp_path / "copy" / "w.pt"
    shutil.move(warm_copy, moved_cache)
    moved_weights.parent.mkdir()
    shutil.copy(weights_file, moved_weights)
    monkeypatch.setenv("ENERGY_BENCH_CACHE", str(moved_cache))
    study = make_study(moved_weights)
    assert study.compressed(MODEL, SPEC).info["compress_cached"] is True
    # another torch version (or energy-bench, torchvision, torch-pruning) would not reuse it
    before, current = cache_file(study, SPEC), cache.versions()
    monkeypatch.setattr(cache, "versions", lambda: {**current, "torch": "99.0"})
    assert cache_file(study, SPEC) != before


def test_cache_folders_are_private(warm):
    for folder in (warm[0], warm[0] / "compressed"):
        assert folder.stat().st_mode & 0o777 == 0o700


# ---------------------------------------------------------------------------- the structure recipe


def tiny_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 10),
    ).eval()


@pytest.mark.parametrize("spec", ["lowrank:rank=0.25", "prune-structured:amount=0.5", "stego:bits=12"])
def test_recipe_rebuilds_changed_structures(tmp_path, spec):
    base, x = tiny_net(), torch.randn(2, 3, 8, 8)
    result = apply(base, spec, example_input=x)
    ident = {"spec": spec}
    assert stored.save(tmp_path / "m.pt", base, result, 1.5, ident, x)
    back = stored.load(tmp_path / "m.pt", base, ident)
    assert same_weights(back.model, result.model) and back.dtype == result.dtype and back.seconds == 1.5
    with torch.no_grad():
        assert torch.equal(back.model(x), result.model(x))


def test_recipe_sets_only_plain_attributes_that_exist():
    base = tiny_net()
    state = base.state_dict()
    with pytest.raises(ValueError, match="no plain attribute 'forward'"):
        stored.rebuild(base, {"factorized": {}, "attributes": {"0": {"forward": 1}}}, state)
    with pytest.raises(ValueError, match="no plain attribute '__class__'"):
        stored.rebuild(base, {"factorized": {}, "attributes": {"0": {"__class__": "x"}}}, state)


def test_a_swapped_in_layer_is_not_stored(tmp_path):
    base = tiny_net()
    changed = tiny_net()
    changed[2] = torch.nn.GELU()
    result = type("R", (), {"model": changed, "details": {}, "dtype": torch.float32})()
    assert stored.save(tmp_path / "m.pt", base, result, 1.0, {}, torch.randn(1, 3, 8, 8)) is False
    assert not (tmp_path / "m.pt").exists()


# ---------------------------------------------------------------------------- torchvision's hub folder


def test_planted_file_in_torch_hub_never_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ENERGY_BENCH_OFFLINE", "1")
    digits = data.load_data("digits", 16)
    marker = tmp_path / "pwned"
    # under the real file name: the hash check refuses it before anything reads it
    path = weights.cached_file(weights.default_weights(MODEL))
    plant(path, marker)
    with pytest.raises(weights.WeightsError, match="does not match"):
        weights.load_pretrained(MODEL, "pretrained", data=digits)
    # under a name matching its own hash: the hash passes, weights_only refuses the pickle
    forged = path.with_name(f"{MODEL}-{cache.file_sha256(path)[:8]}.pth")
    path.rename(forged)
    meta = torchvision.models.ResNet18_Weights.DEFAULT.meta
    fake = type("W", (), {"url": f"https://example.invalid/{forged.name}", "meta": meta})()
    monkeypatch.setattr(weights, "default_weights", lambda name: fake)
    with pytest.raises(weights.WeightsError, match="cannot read a state dict"):
        weights.load_pretrained(MODEL, "pretrained", data=digits)
    assert not marker.exists()


# ---------------------------------------------------------------------------- self weights on bad disks


@pytest.fixture(scope="module")
def digits16():
    return data.load_data("digits", 16)


@pytest.fixture
def quick_pretraining(monkeypatch):
    """These tests are about the cache around pretraining, not the training itself (tests/study/test_study_weights)."""
    from energy_bench.study import train

    monkeypatch.setattr(train, "pretrain", lambda model, data, **kwargs: 0.0)


def pretrain(digits16):
    return weights.load_pretrained(MODEL, "self", data=digits16, profile=PROFILE)


def no_files_under(root):
    return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files]


def mount_tmpfs(path, options):
    """Mount a tmpfs at ``path`` (root only); skip the test with the reason when that is not possible."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    mountpoint = tmp_path / "full"
    mount_tmpfs(mountpoint, "size=512k")
    monkeypatch.setenv("ENERGY_BENCH_CACHE", str(mountpoint))
    yield mountpoint
    subprocess.run(["umount", str(mountpoint)], check=False)


@pytest.fixture
def read_only_dir(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    if os.geteuid() == 0:
        mount_tmpfs(folder, "size=1m")
        remount = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True)
        if remount.returncode != 0:
            subprocess.run(["umount", str(folder)], check=False)
            pytest.skip(f"cannot remount a tmpfs read-only: {remount.stderr.strip()}")
    else:
        folder.mkdir()
        folder.chmod(0o500)
    monkeypatch.setenv("ENERGY_BENCH_CACHE", str(folder / "cache"))
    yield folder
    if os.geteuid() == 0:
        subprocess.run(["umount", str(folder)], check=False)
    else:
        folder.chmod(0o700)


def test_full_cache_keeps_the_pretrained_model(full_disk, digits16, quick_pretraining):
    with pytest.warns(EnergyBenchWarning, match="not cached: cannot write"):
        model, info = pretrain(digits16)
    assert info["cached"] is False and info["saved"] is False
    assert model.eval()(torch.zeros(1, 3, 16, 16)).shape == (1, 10)
    assert no_files_under(full_disk) == []  # no partial temporary file left behind


def test_read_only_cache_keeps_the_work(read_only_dir, digits16, weights_file, monkeypatch, quick_pretraining):
    with pytest.warns(EnergyBenchWarning, match="not cached: cannot write"):
        _model, info = pretrain(digits16)
    assert info["saved"] is False
    monkeypatch.setattr(suite, "CACHE_MIN_SECONDS", 0.0)
    with pytest.warns(EnergyBenchWarning, match="compressed model .* not cached: cannot write"):
        compressed = make_study(weights_file).compressed(MODEL, parse_spec("prune"))
    assert compressed.info["compress_cached"] is False


def test_truncated_self_weights_are_retrained(cache_root, digits16, quick_pretraining):
    _model, info = pretrain(digits16)
    path = cache_root / "weights" / f"{info['cache_key']}.pt"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.warns(EnergyBenchWarning, match="unreadable or corrupt.*rebuilding"):
        _again, info2 = pretrain(digits16)
    assert info2["cached"] is False and info2["saved"] is True
    assert pretrain(digits16)[1]["cached"] is True
