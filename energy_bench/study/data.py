"""Study data: scikit-learn's digits (default), an ImageFolder tree, or a torchvision data set with a local root.

``check_source`` validates an ``--energy-data`` value cheaply (no torch) at configure time; ``load_data`` builds a
seeded, deterministic train/test split at a given image size. All images are 3-channel and normalized with the
ImageNet statistics the pretrained torchvision weights expect.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class DataSource:
    kind: str  # "digits" | "folder" | "torchvision"
    name: str  # what the record calls it: digits, the folder's name, or the torchvision set's name
    root: str | None = None

    @property
    def label(self) -> str:
        return self.name if self.root is None else f"{self.name}:{self.root}"


def check_source(text: str | None) -> DataSource:
    """Parse and cheaply validate ``--energy-data``; ValueError says which part is wrong."""
    text = (text or "digits").strip()
    if text == "digits":
        return DataSource("digits", "digits")
    name, sep, root = text.partition(":")
    if sep and name.lower() in TORCHVISION_SETS and not os.path.isabs(text):
        if not root:
            raise ValueError(f"--energy-data={text}: give the data set's local root, e.g. {name}:/data/{name}")
        if not os.path.isdir(root):
            raise ValueError(f"--energy-data={text}: root directory {root!r} does not exist")
        return DataSource("torchvision", name.lower(), root)
    path = Path(text).expanduser()
    if not path.exists():
        if os.sep in text or text.startswith("."):
            raise ValueError(f"--energy-data={text}: path {str(path)!r} does not exist")
        raise ValueError(
            f"--energy-data={text}: unknown data set {text!r}; use digits, a path to an ImageFolder"
            f" tree, or NAME:ROOT with NAME one of {', '.join(TORCHVISION_SETS)}"
        )
    if not path.is_dir():
        raise ValueError(
            f"--energy-data={text}: {str(path)!r} is not a directory (an ImageFolder tree has one"
            " sub-folder of images per class)"
        )
    classes = [d for d in sorted(path.iterdir()) if d.is_dir() and _has_image(d)]
    if not classes:
        raise ValueError(
            f"--energy-data={text}: {str(path)!r} is an empty tree: no class sub-folder holds images"
            f" ({', '.join(IMAGE_EXTENSIONS)})"
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
        train, test = _split(full, test_fraction, seed)
    else:
        train, test, classes = _torchvision(source, image_size)
    return StudyData(source, image_size, classes, train, test, seed, num_workers)


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
        raise ValueError(f"--energy-data={root}: {exc}") from None
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
            raise ValueError(f"--energy-data={source.label}: {exc}") from None

    train, test = make(True), make(False)
    classes = getattr(train, "classes", None) or [str(i) for i in range(int(max(train.labels)) + 1)]
    return train, test, tuple(str(c) for c in classes)
