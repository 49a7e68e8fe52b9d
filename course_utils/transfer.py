"""The offline source network for transfer learning, and the script that makes it.

Online, transfer learning starts from torchvision's ImageNet weights. Offline it starts from
``models.SmallCNN`` trained on shapes10 (the CIFAR-10 stand-in, 10,000 images); the target is
newshapes10 (``datasets.load_dataset("flowers102")`` offline), ten other shapes drawn the same way.
The trained weights ship in ``data/transfer_source.pt`` with their sha256 beside them, and
:func:`source_network` loads them only when the hash matches (``weights_only=True``).

Remake the file with ``python -m course_utils.transfer`` (about 3 minutes on a 2-core CPU);
the new hash is printed and written beside it; list it in ``data/README.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from course_utils import datasets, models, train
from course_utils.env import repo_root
from course_utils.loader import DeviceLoader

#: Recipe of the shipped source network.
SOURCE_RECIPE = {
    "epochs": 8,
    "batch_size": 128,
    "lr": 3e-3,
    "seed": 0,
    "crop_padding": 2,
    "flip": True,
}
SOURCE_FILE = "transfer_source.pt"


def source_path() -> Path:
    """Where the shipped source network lives: ``data/transfer_source.pt`` in the repository."""
    root = repo_root()
    if root is None:
        raise FileNotFoundError(
            f"the offline source network ships in the repository's data/{SOURCE_FILE}; this "
            "installation has no repository folder: clone the course repository, or use "
            "torchvision's pretrained weights online"
        )
    return root / "data" / SOURCE_FILE


def source_network(device=None) -> models.SmallCNN:
    """``models.SmallCNN`` with the shipped shapes10 weights, verified by sha256, on ``device``."""
    model = models.SmallCNN(num_classes=10).to(device or "cpu")
    path = source_path()
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: restore it from git, or run `python -m course_utils.transfer`"
        )
    return train.load_checkpoint(model, path).eval()


def train_source(out: Path, *, device=None, progress: bool = True) -> float:
    """Train the source network on shapes10 by :data:`SOURCE_RECIPE`, save it (with its .sha256)
    to ``out``; return its shapes10 test accuracy."""
    recipe = SOURCE_RECIPE
    torch.manual_seed(recipe["seed"])
    device = torch.device(device or "cpu")
    x, y = datasets.shapes10(10_000, seed=0)
    x_test, y_test = datasets.shapes10(2_000, seed=1)
    model = models.SmallCNN(num_classes=10).to(device)
    loader = DeviceLoader(
        x,
        y,
        batch_size=recipe["batch_size"],
        crop_padding=recipe["crop_padding"],
        flip=recipe["flip"],
        device=device,
        seed=recipe["seed"],
    )
    test = DeviceLoader(x_test, y_test, batch_size=500, shuffle=False, device=device)
    train.fit(
        model,
        loader,
        epochs=recipe["epochs"],
        lr=recipe["lr"],
        scheduler="onecycle",
        weight_decay=5e-4,
        val=test,
        progress=progress,
    )
    train.save_checkpoint(model, out)
    return train.evaluate(model, test)[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Train the offline transfer-learning source network."
    )
    parser.add_argument(
        "--out", type=Path, default=None, help=f"where to write it (default data/{SOURCE_FILE})"
    )
    args = parser.parse_args(argv)
    out = args.out or source_path()
    accuracy = train_source(out)
    digest = out.with_suffix(out.suffix + ".sha256").read_text().split()[0]
    print(f"{out}: shapes10 test accuracy {accuracy:.2%}, sha256 {digest}")


if __name__ == "__main__":
    main()
