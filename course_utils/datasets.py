"""Image datasets as tensors: real ones from torchvision when online, honest stand-ins offline.

``load_dataset(name, split)`` returns an :class:`ImageData` (tensors ``x`` (N, C, H, W) float32 in
[0, 1] and ``y`` (N,) int64, plus where they came from). Online it uses torchvision's datasets,
downloaded into the data cache with torchvision's checksum checks and a short network timeout.
With ``COURSE_OFFLINE=1``, or when the download or the cache fails, it returns a stand-in and
says so in one line; nothing in the cache is ever deleted.

Stand-ins (documented in ``data/README.md``):

- ``mnist``: scikit-learn's 1,797 real handwritten digits (8x8), upsampled to a 20x20 box centred
  in 28x28 like MNIST, with a fixed stratified 70/30 train/test split.
- ``cifar10``: "shapes10", ten classes of procedurally drawn 32x32 colour images (shapes,
  stripes, textures) at random positions, sizes and colours over noisy backgrounds.
- ``flowers102`` (the transfer-learning target, 10 labelled photos per class online, and a
  "val" split too): "newshapes10", ten shapes drawn the same way that shapes10 does not have, so
  that a network pretrained on shapes10 (``course_utils.transfer``) has something to transfer.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.env import data_dir, is_fast, is_offline
from course_utils.shapes import NEWSHAPES10_CLASSES, SHAPES10_CLASSES, newshapes10, shapes10

DATASETS = ("mnist", "cifar10", "flowers102")
#: Cache folder torchvision creates for each dataset (named in messages about a broken cache).
CACHE_FOLDERS = {"mnist": "MNIST", "cifar10": "cifar-10-batches-py", "flowers102": "flowers-102"}
SPLITS = ("train", "test")
#: Flowers-102 also has its official validation split (10 photos per class).
FLOWERS_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ImageData:
    """Images ``x`` (N, C, H, W) float32 in [0, 1], labels ``y`` (N,) int64, and their provenance."""

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]
    source: str
    standin: bool

    def __len__(self) -> int:
        return len(self.y)


@contextmanager
def network_timeout(seconds: float):
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def load_dataset(
    name: str,
    split: str = "train",
    *,
    root: Path | None = None,
    download: bool = True,
    timeout: float = 10.0,
    quiet: bool = False,
    size: int = 64,
    transform=None,
    per_class: int | None = None,
) -> ImageData:
    """The ``split`` of dataset ``name`` ("mnist", "cifar10" or "flowers102"), real or stand-in
    (see module doc). Flowers-102 only: ``split`` may also be "val"; each photo is resized and
    centre-cropped to ``size`` x ``size``, or prepared by ``transform`` (a pretrained network's
    ``weights.transforms()``; then ``x`` is normalised as that network expects, and the stand-in
    is left as it is); ``per_class`` keeps the first that many photos of each class."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    splits = FLOWERS_SPLITS if name == "flowers102" else SPLITS
    if split not in splits:
        raise ValueError(
            f"{name} has no split {split!r}; choose {' or '.join(repr(s) for s in splits)}"
        )
    if per_class is not None and (isinstance(per_class, bool) or per_class < 1):
        raise ValueError(f"per_class must be a whole number >= 1 or None; got {per_class!r}")
    root = Path(root) if root is not None else data_dir()
    if is_offline():
        reason = "offline mode (COURSE_OFFLINE=1)"
    elif (name, root) in _FAILED:
        reason = _FAILED[name, root]
    else:
        try:
            with network_timeout(timeout):
                _other_splits_readable(name, split, root, download)
                data = _torchvision(name, split, root, download, size, transform, per_class)
            _READABLE.add((name, root, split))
            return data
        # torchvision raises URLError, OSError, RuntimeError, ValueError...: any of them falls back
        except Exception as exc:
            reason = _FAILED[name, root] = _explain(name, root, exc)
            if any(key[:2] == (name, root) for key in _READABLE):  # never mix the two sources
                raise RuntimeError(
                    f"{name} {split} cannot be read ({reason}), but another split of {name} came "
                    "from torchvision earlier in this session; fix the cache and restart the "
                    "kernel, or set COURSE_OFFLINE=1 to use the stand-ins for every split"
                ) from None
    data = _STANDINS[name](split)
    if per_class is not None:
        data = first_per_class(data, per_class)
    if not quiet:
        print(f"⚠ {name} {split}: using the stand-in, {data.source} ({reason})")
    return data


def first_per_class(data: ImageData, per_class: int) -> ImageData:
    """The first ``per_class`` images of each class of ``data``, in their order."""
    keep = torch.cat([torch.nonzero(data.y == c).flatten()[:per_class] for c in data.y.unique()])
    keep = keep.sort().values
    source = f"{data.source}, the first {per_class} of each class ({len(keep):,} images)"
    return ImageData(data.x[keep], data.y[keep], data.classes, source, data.standin)


#: (dataset, cache root) -> why the real data could not be had; later calls do not retry.
_FAILED: dict[tuple[str, Path], str] = {}
#: (dataset, cache root, split) that torchvision opened in this session: checked once.
_READABLE: set[tuple[str, Path, str]] = set()


def _other_splits_readable(name: str, split: str, root: Path, download: bool) -> None:
    """Open the dataset's other splits (downloading them if needed) before the one asked for is
    read, so that a broken split sends every split to the stand-in rather than mixing sources:
    a model trained on real MNIST is never tested on the stand-in's digits."""
    from torchvision import datasets

    root.mkdir(parents=True, exist_ok=True)
    splits = FLOWERS_SPLITS if name == "flowers102" else SPLITS
    others = [s for s in splits if s != split and (name, root, s) not in _READABLE]
    for other in others:
        try:
            if name == "flowers102":
                datasets.Flowers102(root, split=other, download=download)
            elif name == "mnist":
                datasets.MNIST(root, train=other == "train", download=download)
            else:
                datasets.CIFAR10(root, train=other == "train", download=download)
        except Exception as exc:
            raise RuntimeError(
                f"its {other} split: {type(exc).__name__}: {exc}; every split uses the stand-in"
            ) from exc
        _READABLE.add((name, root, other))


def _explain(name: str, root: Path, exc: Exception) -> str:
    """One line saying why the real dataset is unavailable and what to do."""
    folder = root / CACHE_FOLDERS[name]
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
    if folder.exists() and any(p.is_file() for p in folder.rglob("*")):
        return (
            f"the cache in {folder} could not be read ({detail}); it was left as it is: delete that folder "
            "and run again online to download a fresh copy"
        )
    return f"download failed ({detail}); connect to the internet for the real data"


def _torchvision(
    name: str, split: str, root: Path, download: bool, size: int, transform, per_class
) -> ImageData:
    from torchvision import datasets

    root.mkdir(parents=True, exist_ok=True)
    train = split == "train"
    if name == "flowers102":
        return _flowers(split, root, download, size, transform, per_class)
    if name == "mnist":
        ds = datasets.MNIST(root, train=train, download=download)
        x = ds.data.unsqueeze(1).float() / 255.0
        classes = tuple(str(i) for i in range(10))
    else:
        ds = datasets.CIFAR10(root, train=train, download=download)
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float() / 255.0
        classes = tuple(ds.classes)
    y = torch.as_tensor(ds.targets, dtype=torch.int64)
    data = ImageData(
        x.contiguous(),
        y,
        classes,
        f"torchvision {type(ds).__name__} ({split}, {len(y):,} images)",
        False,
    )
    return data if per_class is None else first_per_class(data, per_class)


def _flowers(split: str, root: Path, download: bool, size: int, transform, per_class) -> ImageData:
    """Oxford Flowers-102: 102 classes, 10 photos per class in the official "train" and "val"
    splits, 6,149 in "test"; each photo resized and centre-cropped to size x size, or prepared by
    ``transform``; ``per_class``: only the first that many photos of each class are read."""
    from torchvision import datasets
    from torchvision.transforms import v2

    resize = v2.Compose(
        [
            v2.PILToTensor(),
            v2.Resize(size, antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    ds = datasets.Flowers102(root, split=split, download=download, transform=transform or resize)
    labels = torch.as_tensor(ds._labels, dtype=torch.int64)  # known without reading the photos
    keep = range(len(ds))
    if per_class is not None:
        keep = sorted(
            i for c in labels.unique() for i in torch.nonzero(labels == c)[:per_class, 0].tolist()
        )
    images = [ds[i][0] for i in keep]
    x, y = torch.stack(images), labels[list(keep)]
    classes = tuple(getattr(ds, "classes", None) or (f"flower {i}" for i in range(102)))
    shape = "x".join(str(d) for d in x.shape[-2:])
    prepared = f"prepared by {type(transform).__name__}" if transform is not None else "resized"
    return ImageData(
        x.float().contiguous(),
        y,
        classes,
        f"torchvision Flowers102 ({split}, {len(y):,} photos {prepared} to {shape})",
        False,
    )


def _digits(split: str) -> ImageData:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    train_idx, test_idx = train_test_split(
        np.arange(len(digits.target)), test_size=0.3, random_state=0, stratify=digits.target
    )
    idx = train_idx if split == "train" else test_idx
    images = torch.from_numpy(digits.images[idx]).float().unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    images = F.interpolate(images, size=(20, 20), mode="bilinear", align_corners=False).clamp(0, 1)
    x = F.pad(images, (4, 4, 4, 4))
    y = torch.from_numpy(digits.target[idx]).long()
    source = f"scikit-learn's real handwritten digits, 8x8 upsampled into 28x28 ({split}, {len(y):,} images)"
    return ImageData(x.contiguous(), y, tuple(str(i) for i in range(10)), source, True)


def _shapes(split: str) -> ImageData:
    n = {"train": 10_000, "test": 2_000}[split] // (5 if is_fast() else 1)
    x, y = shapes10(n, seed=0 if split == "train" else 1)
    source = f"shapes10, procedurally drawn 32x32 colour images, 10 classes ({split}, {n:,} images)"
    return ImageData(x, y, SHAPES10_CLASSES, source, True)


def _newshapes(split: str) -> ImageData:
    n = 1_000
    x, y = newshapes10(n, seed={"train": 2, "test": 3, "val": 4}[split])
    source = (
        f"newshapes10, procedurally drawn 32x32 colour images of 10 shapes absent from shapes10 "
        f"({split}, {n:,} images)"
    )
    return ImageData(x, y, NEWSHAPES10_CLASSES, source, True)


_STANDINS = {"mnist": _digits, "cifar10": _shapes, "flowers102": _newshapes}


def standin(name: str, split: str) -> ImageData:
    """The stand-in for dataset ``name``'s ``split``, whatever the network (see module doc)."""
    if name not in _STANDINS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    splits = FLOWERS_SPLITS if name == "flowers102" else SPLITS
    if split not in splits:
        raise ValueError(f"{name} has no split {split!r}; choose one of {', '.join(splits)}")
    return _STANDINS[name](split)


def pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad images (N, C, H, W) symmetrically to (N, C, size, size), e.g. MNIST 28 -> LeNet's 32."""
    height, width = x.shape[-2:]
    if height > size or width > size:
        raise ValueError(f"images of {height}x{width} do not fit in {size}x{size}")
    top, left = (size - height) // 2, (size - width) // 2
    return F.pad(x, (left, size - width - left, top, size - height - top))
