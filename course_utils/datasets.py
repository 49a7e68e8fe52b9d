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

DATASETS = ("mnist", "cifar10")
SPLITS = ("train", "test")
SHAPES10_CLASSES = (
    "disk",
    "square",
    "triangle",
    "ring",
    "cross",
    "horizontal bars",
    "vertical bars",
    "checkerboard",
    "diagonal stripes",
    "two dots",
)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


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
def _network_timeout(seconds: float):
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
) -> ImageData:
    """The ``split`` of dataset ``name`` ("mnist" or "cifar10"), real or stand-in (see module doc)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    root = Path(root) if root is not None else data_dir()
    if is_offline():
        reason = "offline mode (COURSE_OFFLINE=1)"
    elif (name, root) in _FAILED:
        reason = _FAILED[name, root]
    else:
        try:
            with _network_timeout(timeout):
                return _torchvision(name, split, root, download)
        except (
            Exception
        ) as exc:  # torchvision raises URLError, OSError, RuntimeError, ValueError...
            reason = _FAILED[name, root] = _explain(name, root, exc)
    data = _STANDINS[name](split)
    if not quiet:
        print(f"⚠ {name} {split}: using the stand-in, {data.source} ({reason})")
    return data


#: (dataset, cache root) -> why the real data could not be had; later calls do not retry.
_FAILED: dict[tuple[str, Path], str] = {}


def _explain(name: str, root: Path, exc: Exception) -> str:
    """One line saying why the real dataset is unavailable and what to do."""
    folder = root / ("MNIST" if name == "mnist" else "cifar-10-batches-py")
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
    if folder.exists() and any(p.is_file() for p in folder.rglob("*")):
        return (
            f"the cache in {folder} could not be read ({detail}); it was left as it is: delete that folder "
            "and run again online to download a fresh copy"
        )
    return f"download failed ({detail}); connect to the internet for the real data"


def _torchvision(name: str, split: str, root: Path, download: bool) -> ImageData:
    from torchvision import datasets

    root.mkdir(parents=True, exist_ok=True)
    train = split == "train"
    if name == "mnist":
        ds = datasets.MNIST(root, train=train, download=download)
        x = ds.data.unsqueeze(1).float() / 255.0
        classes = tuple(str(i) for i in range(10))
    else:
        ds = datasets.CIFAR10(root, train=train, download=download)
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float() / 255.0
        classes = tuple(ds.classes)
    y = torch.as_tensor(ds.targets, dtype=torch.int64)
    return ImageData(
        x.contiguous(),
        y,
        classes,
        f"torchvision {type(ds).__name__} ({split}, {len(y):,} images)",
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


def _wave(t: torch.Tensor) -> torch.Tensor:
    """A square wave of period 1: True on the first half of each period (negative t too)."""
    return torch.remainder(t, 1.0) < 0.5


def shapes10(n: int, *, seed: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` procedurally drawn colour images (n, 3, size, size) in [0, 1] and labels (n,), balanced.

    Each class is a spatial pattern (see :data:`SHAPES10_CLASSES`) drawn with a random colour,
    centre, scale and (for the textures, which fill a square patch) period and phase, over a random background colour with
    smooth noise; the foreground never has the background's colour.
    """
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    y = y[torch.randperm(n, generator=g)]
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1  # [-1, 1]
    yy, xx = coords.view(1, -1, 1), coords.view(1, 1, -1)

    def u(lo, hi):
        return torch.rand(n, 1, 1, generator=g) * (hi - lo) + lo

    cy, cx, r = u(-0.35, 0.35), u(-0.35, 0.35), u(0.3, 0.6)
    dy, dx = yy - cy, xx - cx
    dist = torch.sqrt(dy**2 + dx**2)
    period, phase = u(0.12, 0.25), u(0, 1)
    patch = (dy.abs() < r) & (dx.abs() < r)  # textures fill a square patch at a random place
    masks = torch.stack(
        [
            dist < r,  # disk
            (dy.abs() < r * 0.85) & (dx.abs() < r * 0.85),  # square
            (dy < r * 0.7) & (dy > -r * 0.9 + 1.6 * dx.abs()),  # triangle
            (dist < r) & (dist > r * 0.55),  # ring
            ((dy.abs() < r * 0.25) & (dx.abs() < r))
            | ((dx.abs() < r * 0.25) & (dy.abs() < r)),  # cross
            patch & _wave(yy / period + phase),  # horizontal bars
            patch & _wave(xx / period + phase),  # vertical bars
            patch & (_wave(yy / period + phase) ^ _wave(xx / period + phase)),  # checkerboard
            patch & _wave((yy + xx) / (1.4 * period) + phase),  # diagonal stripes
            (((yy - cy) ** 2 + (xx - cx - r) ** 2).sqrt() < r * 0.4)
            | (((yy - cy) ** 2 + (xx - cx + r) ** 2).sqrt() < r * 0.4),  # two dots
        ],
        dim=1,
    )  # (n, 10, H, W)
    mask = masks[torch.arange(n), y].float().unsqueeze(1)  # (n, 1, H, W)
    background = torch.rand(n, 3, 1, 1, generator=g)
    foreground = (background + 0.35 + 0.3 * torch.rand(n, 3, 1, 1, generator=g)) % 1.0
    noise = F.interpolate(
        torch.randn(n, 3, size // 4, size // 4, generator=g),
        size=(size, size),
        mode="bilinear",
        align_corners=False,
    )
    x = (
        mask * foreground
        + (1 - mask) * background
        + 0.08 * noise
        + 0.03 * torch.randn(n, 3, size, size, generator=g)
    )
    return x.clamp(0, 1), y.long()


def _shapes(split: str) -> ImageData:
    n = {"train": 10_000, "test": 2_000}[split] // (5 if is_fast() else 1)
    x, y = shapes10(n, seed=0 if split == "train" else 1)
    source = f"shapes10, procedurally drawn 32x32 colour images, 10 classes ({split}, {n:,} images)"
    return ImageData(x, y, SHAPES10_CLASSES, source, True)


_STANDINS = {"mnist": _digits, "cifar10": _shapes}


def pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad images (N, C, H, W) symmetrically to (N, C, size, size), e.g. MNIST 28 -> LeNet's 32."""
    height, width = x.shape[-2:]
    if height > size or width > size:
        raise ValueError(f"images of {height}x{width} do not fit in {size}x{size}")
    top, left = (size - height) // 2, (size - width) // 2
    return F.pad(x, (left, size - width - left, top, size - height - top))
