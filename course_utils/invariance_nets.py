"""The networks notebook 09 measures: a small CNN trained on shapes10 with and without blurred
subsampling, with a wider range of sizes, or at every angle; three seeds of each.

Trained by ``python -m course_utils.invariance_nets`` (about 3 minutes on a 2-core CPU) and
shipped inside the package (``course_utils/assets/invariance_nets.pt``, with its sha256 beside it,
loaded with ``weights_only=True``), so the notebook only measures.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from course_utils import datasets, train
from course_utils.invariance import max_blur_pool
from course_utils.loader import DeviceLoader

#: How every variant is trained (the same images, steps and learning rate for each).
RECIPE = {"images": 6_000, "epochs": 6, "batch_size": 128, "lr": 3e-3, "data_seed": 20}
#: Variant -> (blurred subsampling, size range of the training shapes, angle range).
VARIANTS = {
    "plain": (False, (0.3, 0.6), (0.0, 0.0)),
    "antialiased": (True, (0.3, 0.6), (0.0, 0.0)),
    "scale": (False, (0.12, 0.9), (0.0, 0.0)),
    "rotation": (False, (0.3, 0.6), (-180.0, 180.0)),
}
SEEDS = (0, 1, 2)
FILE = "invariance_nets.pt"


class ShapeNet(nn.Module):
    """Four 3x3 convolutions (16-32-64-64 channels, batch norm, ReLU), 2x2 subsampling after the
    first three (total stride 8), global average pooling and a linear classifier; 61,338
    parameters. Named layers: conv1, pool1, ..., conv4, gap, fc. ``antialias=True`` subsamples
    with :func:`~course_utils.invariance.max_blur_pool` instead of ``nn.MaxPool2d(2)``.
    (N, 3, H, W) -> (N, 10)."""

    def __init__(self, *, antialias: bool = False, num_classes: int = 10) -> None:
        super().__init__()
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels = 3
        for index, width in enumerate((16, 32, 64, 64), start=1):
            layers[f"conv{index}"] = nn.Sequential(
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            )
            if index < 4:
                layers[f"pool{index}"] = max_blur_pool(width) if antialias else nn.MaxPool2d(2)
            channels = width
        layers["gap"] = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        layers["fc"] = nn.Linear(channels, num_classes)
        for name, layer in layers.items():
            self.add_module(name, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)
        return x


def training_data(variant: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images (N, 3, 32, 32) and labels of ``variant``."""
    _, radius, angle = VARIANTS[variant]
    return datasets.shapes10(RECIPE["images"], seed=RECIPE["data_seed"], radius=radius, angle=angle)


def train_variant(variant: str, seed: int, *, device=None, progress: bool = False) -> ShapeNet:
    """A :class:`ShapeNet` trained by :data:`RECIPE` on ``variant``'s data from ``seed``."""
    if variant not in VARIANTS:
        raise KeyError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    torch.manual_seed(seed)
    model = ShapeNet(antialias=VARIANTS[variant][0]).to(device or "cpu")
    x, y = training_data(variant)
    loader = DeviceLoader(x, y, batch_size=RECIPE["batch_size"], device=device, seed=seed)
    train.fit(
        model, loader, epochs=RECIPE["epochs"], lr=RECIPE["lr"], scheduler="cosine",
        progress=progress,
    )  # fmt: skip
    return model.eval()


def path() -> Path:
    """Where the shipped networks live: inside the installed package."""
    return Path(__file__).resolve().parent / "assets" / FILE


def load(variant: str, seed: int = 0, *, device=None) -> ShapeNet:
    """The shipped ``variant`` network of ``seed``, verified by sha256, in eval mode."""
    if variant not in VARIANTS or type(seed) is not int or seed not in SEEDS:
        raise KeyError(
            f"no shipped network {variant!r} seed {seed!r}; variants: {', '.join(VARIANTS)}; "
            f"seeds: {SEEDS}"
        )
    model = ShapeNet(antialias=VARIANTS[variant][0])
    model.load_state_dict(_states(path())[f"{variant}/{seed}"])
    return model.to(device or "cpu").eval()


@functools.lru_cache(maxsize=2)
def _states(file: Path) -> dict:
    """Every shipped state dict, read and verified once per process."""
    if not file.exists() or not file.with_suffix(file.suffix + ".sha256").exists():
        raise FileNotFoundError(
            f"{file} (or its .sha256) is missing from this installation of course_utils: "
            "reinstall the package, or remake it with `python -m course_utils.invariance_nets`"
        )
    return train.verified_state(file, fix="remake it with `python -m course_utils.invariance_nets`")


def main(argv: list[str] | None = None) -> None:
    """Train every variant and seed; write the file and its sha256."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=path())
    args = parser.parse_args(argv)
    states = {}
    for variant in VARIANTS:
        for seed in SEEDS:
            start = time.perf_counter()
            model = train_variant(variant, seed)
            states[f"{variant}/{seed}"] = model.state_dict()
            print(f"{variant}/{seed}: {time.perf_counter() - start:.0f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(states, args.out)
    digest = train.sha256(args.out)
    args.out.with_suffix(args.out.suffix + ".sha256").write_text(f"{digest}  {args.out.name}\n")
    print(f"wrote {args.out} (sha256 {digest})")


if __name__ == "__main__":
    main()
