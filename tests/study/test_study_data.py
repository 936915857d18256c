"""Study data: digits, an ImageFolder built in tmp_path, bad --energy-data values."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from energy_bench.study import data


def test_digits_shapes_and_split_are_deterministic():
    a = data.load_data("digits", 16, seed=3)
    b = data.load_data("digits", 16, seed=3)
    c = data.load_data("digits", 16, seed=4)
    assert a.num_classes == 10
    assert len(a.train) + len(a.test) == 1797
    assert len(a.test) == round(1797 * 0.2)
    images, labels = a.train.tensors
    assert images.shape[1:] == (3, 16, 16) and images.dtype == torch.float32
    assert torch.equal(images[:, 0], images[:, 1]) is False  # normalized per channel: channels differ
    assert torch.equal(labels, b.train.tensors[1]) and torch.equal(images, b.train.tensors[0])
    assert not torch.equal(a.test.tensors[1], c.test.tensors[1])


def test_batches_follow_the_given_order():
    d = data.load_data("digits", 8)
    order = [5, 1, 9]
    ((_images, labels),) = list(d.batches("train", order, batch_size=8))
    assert torch.equal(labels, d.train.tensors[1][order])


def _image_folder(root, classes=("cat", "dog"), per_class=3):
    from PIL import Image

    for i, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for j in range(per_class):
            Image.new("L", (10, 12), color=40 * i + j).save(root / cls / f"{j}.png")
    return root


def test_image_folder(tmp_path):
    root = _image_folder(tmp_path / "malimg")
    source = data.check_source(str(root))
    assert source.kind == "folder" and source.name == "malimg"
    d = data.load_data(source, 20, seed=0, test_fraction=0.34)
    assert d.classes == ("cat", "dog")
    assert len(d.train) + len(d.test) == 6 and len(d.test) == 2
    images, labels = next(d.batches("train", range(len(d.train)), batch_size=8))
    assert images.shape == (4, 3, 20, 20)
    assert labels.tolist() == sorted(labels.tolist())  # indices in order, labels follow the folder order


@pytest.mark.parametrize(
    "value, message",
    [
        ("imagenet", "unknown data set 'imagenet'"),
        ("./nowhere/at/all", "does not exist"),
        ("cifar10:/definitely/missing", "root directory '/definitely/missing' does not exist"),
        ("cifar10:", "give the data set's local root"),
    ],
)
def test_bad_sources_say_which(value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        data.check_source(value)


def test_empty_tree_and_file_are_rejected(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match="empty tree"):
        data.check_source(str(tmp_path / "empty"))
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ValueError, match="is not a directory"):
        data.check_source(str(tmp_path / "f.txt"))


def test_torchvision_set_without_files_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cifar10"):
        data.load_data(f"cifar10:{tmp_path}", 32)


def test_one_class_is_rejected_before_loading(tmp_path):
    root = _image_folder(tmp_path / "one", classes=("cat",))
    with pytest.raises(data.DataError, match=r"has one class \(cat\); classification needs at least two"):
        data.check_source(str(root))


def test_empty_torchvision_root_is_rejected(tmp_path):
    with pytest.raises(data.DataError, match="is empty"):
        data.check_source(f"cifar10:{tmp_path}")


def test_unreadable_image_is_named_when_loaded(tmp_path):
    root = _image_folder(tmp_path / "pets")
    broken = root / "dog" / "1.png"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated: PIL can open the header, not decode the pixels
    with pytest.raises(data.DataError) as info:
        data.load_data(str(root), 16)
    assert str(info.value).startswith(f"--energy-data={root}: cannot read image {broken} (")


def test_splits_and_batch_size_are_checked():
    digits = data.load_data("digits", 8)
    data.check_usable(digits, len(digits.train))
    with pytest.raises(data.DataError, match=r"--energy-batch-size=1439 is larger than the training split of digits"):
        data.check_usable(digits, len(digits.train) + 1)
    empty = data.StudyData(digits.source, 8, digits.classes, [], digits.test, 0)
    with pytest.raises(data.DataError, match="too few for a training and a test split"):
        data.check_usable(empty, 1)


def test_identity_depends_on_content_not_place(tmp_path):
    a = _image_folder(tmp_path / "a" / "pets")
    b = tmp_path / "b" / "pets"
    b.parent.mkdir()
    import shutil

    shutil.copytree(a, b)
    ident = data.data_identity(data.check_source(str(a)))
    assert ident == data.data_identity(data.check_source(str(b))) and ident.startswith("pets:")
    assert data.data_identity(data.check_source("digits")) == "digits"
