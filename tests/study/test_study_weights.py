"""Study weights: torchvision's offline cache, self-pretraining cache, user state-dict files."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from energy_bench.study import data, profiles, weights, zoo


@pytest.fixture(scope="module")
def digits():
    return data.load_data("digits", 16)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ENERGY_BENCH_OFFLINE", "1")
    return tmp_path / "torch"


def _save_named_by_hash(state, folder, model):
    """Save ``state`` as torchvision names its files: <model>-<first 8 hex digits of the file's SHA-256>.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "tmp.pth"
    torch.save(state, tmp)
    path = folder / f"{model}-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(path)
    return path


@dataclasses.dataclass
class _Weights:
    """Stands in for a torchvision weights enum member: the url's file name and the meta torchvision builds from."""

    url: str
    meta: dict

    def __str__(self):
        return "ResNet18_Weights.TEST"


def test_pretrained_loads_a_verified_file_offline(torch_home, digits, monkeypatch):
    reference = torchvision.models.resnet18(weights=None)
    path = _save_named_by_hash(reference.state_dict(), torch_home / "hub" / "checkpoints", "resnet18")
    meta = torchvision.models.ResNet18_Weights.DEFAULT.meta
    monkeypatch.setattr(weights, "default_weights", lambda name: _Weights(f"https://example.invalid/{path.name}", meta))

    model, info = weights.load_pretrained("resnet18", "pretrained", data=digits)
    assert info["source"] == "pretrained" and info["path"] == str(path)
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert torch.equal(model.conv1.weight, reference.conv1.weight)
    assert model.fc.out_features == 10  # the head is the data set's


def test_pretrained_file_not_matching_its_hash_is_a_clear_error(torch_home, digits):
    expected = weights.cached_file(weights.default_weights("resnet18"))
    assert expected == torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    expected.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), expected)  # right shapes, wrong bytes
    with pytest.raises(weights.WeightsError) as info:
        weights.load_pretrained("resnet18", "pretrained", data=digits)
    message = str(info.value)
    assert message.startswith(f"{expected}: SHA-256 ") and "does not match f37072fd" in message
    assert "energy-bench fetch-weights resnet18" in message


@pytest.mark.parametrize("name", ["googlenet", "inception_v3", "densenet121"])
def test_pretrained_architecture_is_torchvisions(name, monkeypatch):
    """What we build around a verified state dict is what torchvision's get_model(weights=...) builds."""
    from torchvision.models import _api

    enum = weights.default_weights(name)
    ours = weights._pretrained_architecture(name, enum, _fresh_state(name, enum))
    monkeypatch.setattr(_api, "load_state_dict_from_url", lambda url, **kw: _fresh_state(name, enum))
    theirs = torchvision.models.get_model(name, weights=enum)  # loads the patched state instead of downloading
    assert type(ours) is type(theirs)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    for attr in ("transform_input", "aux_logits"):
        assert getattr(ours, attr, None) == getattr(theirs, attr, None)


def _fresh_state(name, enum):
    kwargs = {"num_classes": len(enum.meta["categories"])}
    if name in ("googlenet", "inception_v3"):
        kwargs.update(aux_logits=True, init_weights=False)
    return torchvision.models.get_model(name, weights=None, **kwargs).state_dict()


def test_pretrained_missing_offline_names_the_file(torch_home, digits):
    with pytest.raises(weights.WeightsUnavailable) as info:
        weights.load_pretrained("alexnet", "pretrained", data=digits)
    message = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in message and str(torch_home) in message
    assert "energy-bench fetch-weights alexnet" in message


def test_self_pretraining_is_cached(tmp_path, monkeypatch, digits):
    monkeypatch.setenv("ENERGY_BENCH_CACHE", str(tmp_path / "cache"))
    profile = dataclasses.replace(profiles.get_profile("smoke"), pretrain_steps=1, batch_size=4)
    first, info1 = weights.load_pretrained("resnet18", "self", data=digits, profile=profile)
    assert info1["cached"] is False and info1["path"].startswith(str(tmp_path / "cache"))
    second, info2 = weights.load_pretrained("resnet18", "self", data=digits, profile=profile)
    assert info2["cached"] is True and info2["cache_key"] == info1["cache_key"]
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    _other, info3 = weights.load_pretrained("resnet18", "self", data=digits, profile=profile, seed=1)
    assert info3["cache_key"] != info1["cache_key"] and info3["cached"] is False


def test_random_differs_from_seed_to_seed(digits):
    a, info = weights.load_pretrained("resnet18", "random", data=digits, seed=0)
    b, _ = weights.load_pretrained("resnet18", "random", data=digits, seed=1)
    assert info["source"] == "random"
    assert not torch.equal(a.conv1.weight, b.conv1.weight)


def _resnet18_state(num_classes=10):
    return torchvision.models.resnet18(weights=None, num_classes=num_classes).state_dict()


def test_path_file_and_folder(tmp_path, digits):
    state = _resnet18_state(1000)  # another head: replaced, everything else loaded
    torch.save(state, tmp_path / "resnet18.pt")
    model, info = weights.load_pretrained("resnet18", str(tmp_path), data=digits)
    assert info["path"] == str(tmp_path / "resnet18.pt") and "head" in info["adapted"]
    assert torch.equal(model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    model, info = weights.load_pretrained("resnet18", str(tmp_path / "resnet18.pt"), data=digits)
    assert info["source"] == "path"


def test_path_with_wrong_keys_names_file_and_key(tmp_path, digits):
    state = _resnet18_state()
    state["bogus.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(weights.WeightsError, match=f"{path}: does not fit resnet18: unexpected key 'bogus.weight'"):
        weights.load_pretrained("resnet18", str(path), data=digits)
    del state["bogus.weight"], state["layer2.0.bn1.bias"]
    torch.save(state, path)
    with pytest.raises(weights.WeightsError, match="missing key 'layer2.0.bn1.bias'"):
        weights.load_pretrained("resnet18", str(path), data=digits)


def test_path_with_wrong_shape_names_file_and_shapes(tmp_path, digits):
    state = _resnet18_state()
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    path = tmp_path / "shape.pt"
    torch.save(state, path)
    with pytest.raises(weights.WeightsError) as info:
        weights.load_pretrained("resnet18", str(path), data=digits)
    assert str(info.value) == (
        f"{path}: does not fit resnet18: 'conv1.weight' has shape [64, 3, 3, 3] in the file, [64, 3, 7, 7] in the model"
    )


def test_path_that_is_no_state_dict(tmp_path, digits):
    (tmp_path / "x.pt").write_text("not torch")
    with pytest.raises(weights.WeightsError, match="cannot read a state dict"):
        weights.load_pretrained("resnet18", str(tmp_path / "x.pt"), data=digits)
    with pytest.raises(weights.WeightsError, match="folder has no vgg16.pt"):
        weights.resolve_path("vgg16", str(tmp_path))


def test_check_option():
    assert weights.check_option("self") == "self"
    with pytest.raises(ValueError, match="no such file or folder"):
        weights.check_option("/no/such/weights.pt")


def test_vit_at_a_smaller_size_interpolates_position_embeddings(tmp_path):
    state = torchvision.models.vit_b_16(weights=None).state_dict()  # 224 px
    model = zoo.build_model("vit_b_16", 10, 32)
    adapted = weights.load_state_into("vit_b_16", model, state, "vit.pt")
    assert adapted["pos_embedding"] == "interpolated" and "head" in adapted
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_fetch_weights_replaces_a_damaged_file(torch_home, monkeypatch):
    original = _save_named_by_hash({"w": torch.ones(3)}, torch_home / "hub" / "checkpoints", "resnet18")
    good = original.read_bytes()
    original.write_bytes(good[:50])  # a half-written download
    meta = torchvision.models.ResNet18_Weights.DEFAULT.meta
    monkeypatch.setattr(
        weights, "default_weights", lambda name: _Weights(f"https://example.invalid/{original.name}", meta)
    )
    fetched = []

    def download_url_to_file(url, dst, hash_prefix=None, progress=True):  # torch.hub's, without the network
        assert hashlib.sha256(good).hexdigest().startswith(hash_prefix)
        fetched.append(url)
        with open(dst, "wb") as f:
            f.write(good)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download_url_to_file)
    assert weights.fetch_weights(["resnet18"], progress=False) == [original]
    assert original.read_bytes() == good and len(fetched) == 1
    assert weights.fetch_weights(["resnet18"], progress=False) == [original] and len(fetched) == 1  # verified: kept
