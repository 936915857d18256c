"""Study data: scikit-learn's digits (default), an ImageFolder tree, or a torchvision data set with a local root.

``check_source`` validates an ``--energy-data`` value cheaply (no torch) at configure time; ``load_data`` builds a
seeded, deterministic train/test split at a given image size; ``check_usable`` says whether a loaded split can be
trained and evaluated with a batch size. All images are 3-channel and normalized with the ImageNet statistics the
pretrained torchvision weights expect.

An image folder is verified once per process when first loaded: every image is decoded, and the first that cannot
be is named in a ``DataError`` before anything is measured. A data set's ``identity`` (for cache keys) depends on its
files' names and sizes, not on where it lives.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from energy_bench.errors import EnergyBenchError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

# torchvision data sets that take (root, train=..., download=False); NAME:ROOT in --energy-data.
TORCHVISION_SETS = {
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "mnist": "MNIST",
    "fashionmnist": "FashionMNIST",
    "kmnist": "KMNIST",
    "emnist": "EMNIST",
    "svhn": "SVHN",
    "stl10": "STL10",
}


class DataError(EnergyBenchError, ValueError):
    """An --energy-data value, or data behind it, that the study cannot use; the message names what and why."""


@dataclass(frozen=True)
class DataSource:
    kind: str  # "digits" | "folder" | "torchvision"
    name: str  # what the record calls it: digits, the folder's name, or the torchvision set's name
    root: str | None = None

    @property
    def label(self) -> str:
        return self.name if self.root is None else f"{self.name}:{self.root}"

    @property
    def option(self) -> str:
        """The --energy-data value that names this source (for messages)."""
        return self.root if self.kind == "folder" else self.label


def check_source(text: str | None) -> DataSource:
    """Parse and cheaply validate ``--energy-data``; ValueError says which part is wrong."""
    text = (text or "digits").strip()
    if text == "digits":
        return DataSource("digits", "digits")
    name, sep, root = text.partition(":")
    if sep and name.lower() in TORCHVISION_SETS and not os.path.isabs(text):
        if not root:
            raise DataError(f"--energy-data={text}: give the data set's local root, e.g. {name}:/data/{name}")
        if not os.path.isdir(root):
            raise DataError(f"--energy-data={text}: root directory {root!r} does not exist")
        if not any(os.scandir(root)):
            raise DataError(f"--energy-data={text}: root directory {root!r} is empty (the data set's files go there)")
        return DataSource("torchvision", name.lower(), root)
    path = Path(text).expanduser()
    if not path.exists():
        if os.sep in text or text.startswith("."):
            raise DataError(f"--energy-data={text}: path {str(path)!r} does not exist")
        raise DataError(
            f"--energy-data={text}: unknown data set {text!r}; use digits, a path to an ImageFolder"
            f" tree, or NAME:ROOT with NAME one of {', '.join(TORCHVISION_SETS)}"
        )
    if not path.is_dir():
        raise DataError(
            f"--energy-data={text}: {str(path)!r} is not a directory (an ImageFolder tree has one"
            " sub-folder of images per class)"
        )
    classes = [d for d in sorted(path.iterdir()) if d.is_dir() and _has_image(d)]
    if not classes:
        raise DataError(
            f"--energy-data={text}: {str(path)!r} is an empty tree: no class sub-folder holds images"
            f" ({', '.join(IMAGE_EXTENSIONS)})"
        )
    if len(classes) < 2:
        raise DataError(
            f"--energy-data={text}: {str(path)!r} has one class ({classes[0].name}); classification needs at"
            " least two class sub-folders of images"
        )
    return DataSource("folder", path.name, str(path))


def _has_image(folder: Path) -> bool:
    return any(any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files) for _, _, files in os.walk(folder))


@dataclass
class StudyData:
    """A train/test split at one image size. ``train``/``test`` are torch Datasets (TensorDatasets for digits)."""

    source: DataSource
    image_size: int
    classes: tuple[str, ...]
    train: Any
    test: Any
    seed: int
    num_workers: int = 0
    identity: str = ""  # what the data is, for cache keys: "digits", or NAME:HASH of the files' names and sizes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def batches(
        self, split: str, indices: Sequence[int] | None = None, batch_size: int = 32
    ) -> Iterator[tuple[Any, Any]]:
        """(images, labels) batches of ``split`` in the order of ``indices`` (default: all, in order)."""
        import torch

        dataset = self.train if split == "train" else self.test
        if indices is None:
            indices = range(len(dataset))
        indices = list(indices)
        tensors = getattr(dataset, "tensors", None)
        if tensors is not None:  # in memory: slicing beats a DataLoader by far on small batches
            index = torch.as_tensor(indices, dtype=torch.long)
            for start in range(0, len(index), batch_size):
                chunk = index[start : start + batch_size]
                yield tensors[0][chunk], tensors[1][chunk]
            return
        loader = torch.utils.data.DataLoader(
            torch.utils.data.Subset(dataset, indices),
            batch_size=batch_size,
            shuffle=False,
            num_workers=self.num_workers,
        )
        yield from loader

    def example_input(self, batch: int = 1) -> Any:
        return next(self.batches("test", range(min(batch, len(self.test))), batch))[0]


def load_data(
    source: DataSource | str, image_size: int, *, seed: int = 0, test_fraction: float = 0.2, num_workers: int = 0
) -> StudyData:
    """Load ``source`` at ``image_size`` with a split that depends only on ``seed`` (and the data)."""
    if isinstance(source, str):
        source = check_source(source)
    if source.kind == "digits":
        full, classes = _digits(image_size)
        train, test = _split(full, test_fraction, seed)
    elif source.kind == "folder":
        full, classes = _folder(source.root, image_size)
        verify_images(source, full.samples)
        train, test = _split(full, test_fraction, seed)
    else:
        train, test, classes = _torchvision(source, image_size)
    return StudyData(source, image_size, classes, train, test, seed, num_workers, identity=data_identity(source))


def check_usable(data: StudyData, batch_size: int) -> None:
    """DataError unless ``data`` has two classes, a train and a test split, and a training batch of ``batch_size``."""
    label = data.source.option
    if data.num_classes < 2:
        raise DataError(f"--energy-data={label}: {data.num_classes} class; classification needs at least two")
    if len(data.train) == 0 or len(data.test) == 0:
        total = len(data.train) + len(data.test)
        raise DataError(
            f"--energy-data={label}: {total} image(s) are too few for a training and a test split"
            f" ({len(data.train)} + {len(data.test)})"
        )
    if batch_size > len(data.train):
        raise DataError(
            f"--energy-batch-size={batch_size} is larger than the training split of {label}"
            f" ({len(data.train)} images): lower it or use more data"
        )


#: roots whose images were all decoded in this process (verify once per session)
_VERIFIED: set[str] = set()


def verify_images(source: DataSource, samples: Sequence[tuple[str, int]]) -> None:
    """Decode every image of an image folder once; DataError naming the first one that cannot be read."""
    from PIL import Image

    if source.root in _VERIFIED:
        return
    for path, _label in samples:
        try:
            with Image.open(path) as image:
                image.load()
        except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"--energy-data={source.option}: cannot read image {path} ({reason})") from None
    _VERIFIED.add(source.root)


_IDENTITIES: dict[str, str] = {}


def data_identity(source: DataSource) -> str:
    """What the data is, wherever it lives: "digits", or NAME:HASH of its files' relative names and sizes."""
    if source.root is None:
        return source.name
    if source.root not in _IDENTITIES:
        import hashlib

        digest = hashlib.sha256()
        for folder, dirs, files in os.walk(source.root):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                digest.update(f"{os.path.relpath(path, source.root)}\0{os.path.getsize(path)}\n".encode())
        _IDENTITIES[source.root] = f"{source.name}:{digest.hexdigest()[:16]}"
    return _IDENTITIES[source.root]


def _split(dataset: Any, test_fraction: float, seed: int) -> tuple[Any, Any]:
    import torch

    n = len(dataset)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_test = max(1, round(n * test_fraction))
    test_idx, train_idx = sorted(order[:n_test]), sorted(order[n_test:])
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:
        return (
            torch.utils.data.TensorDataset(*(t[train_idx] for t in tensors)),
            torch.utils.data.TensorDataset(*(t[test_idx] for t in tensors)),
        )
    return torch.utils.data.Subset(dataset, train_idx), torch.utils.data.Subset(dataset, test_idx)


def _normalize(images: Any) -> Any:
    import torch

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def _digits(image_size: int) -> tuple[Any, tuple[str, ...]]:
    """The 1797 8x8 digits (values 0..16), bilinearly resized, gray copied to 3 channels, normalized."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    images = _normalize(images.clamp(0, 1).expand(-1, 3, -1, -1)).contiguous()
    labels = torch.tensor(bunch.target, dtype=torch.long)
    return torch.utils.data.TensorDataset(images, labels), tuple(str(c) for c in bunch.target_names)


def _transform(image_size: int) -> Any:
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Lambda(lambda img: img.convert("RGB")),
            transforms.Resize((image_size, image_size)),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def _folder(root: str, image_size: int) -> tuple[Any, tuple[str, ...]]:
    from torchvision.datasets import ImageFolder

    try:
        dataset = ImageFolder(root, transform=_transform(image_size))
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"--energy-data={root}: {exc}") from None
    return dataset, tuple(dataset.classes)


def _torchvision(source: DataSource, image_size: int) -> tuple[Any, Any, tuple[str, ...]]:
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION_SETS[source.name])
    transform = _transform(image_size)

    def make(train: bool) -> Any:
        split_kw = {"split": "train" if train else "test"} if source.name in ("svhn", "stl10") else {"train": train}
        if source.name == "emnist":
            split_kw = {"split": "balanced", "train": train}
        try:
            return cls(source.root, download=False, transform=transform, **split_kw)
        except RuntimeError as exc:  # "Dataset not found or corrupted. You can use download=True..."
            raise DataError(f"--energy-data={source.label}: {exc}") from None

    train, test = make(True), make(False)
    classes = getattr(train, "classes", None) or [str(i) for i in range(int(max(train.labels)) + 1)]
    return train, test, tuple(str(c) for c in classes)
