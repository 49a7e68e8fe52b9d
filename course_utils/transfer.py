"""The transfer pair: a source network h_S and a target dataset T whose labels it never saw.

Online (:func:`load_pair` with a torchvision model name), h_S is an ImageNet-1K network from
``pretrained.load`` and T is Oxford Flowers-102, prepared by the weights' own transforms.
Offline, or when either cannot be had, the pair is the course's own: h_S is ``models.SmallCNN``
trained on shapes10 (the CIFAR-10 stand-in, 10,000 images) and T is newshapes10, ten other
shapes drawn the same way. Those weights ship inside the package
(``course_utils/assets/transfer_source.pt``, so a pip-installed copy in Colab has them) with their
sha256 beside them, and :func:`source_network` loads them only when the hash matches
(``weights_only=True``).

Remake the file with ``python -m course_utils.transfer`` (about 5 minutes on a 2-core CPU);
the new hash is printed and written beside it; list it in ``data/README.md``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from course_utils import datasets, models, pretrained, train
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
#: The target's splits: a labelled pool to draw few labels from, a validation set (only the
#: scratch baseline's recipe is chosen on it) and a test set.
TARGET_SPLITS = ("train", "val", "test")


def source_path() -> Path:
    """Where the shipped source network lives: inside the installed package."""
    return Path(__file__).resolve().parent / "assets" / SOURCE_FILE


def source_network(device=None) -> models.SmallCNN:
    """``models.SmallCNN`` with the shipped shapes10 weights, verified by sha256, on ``device``."""
    model = models.SmallCNN(num_classes=10).to(device or "cpu")
    path = source_path()
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing from this installation of course_utils: reinstall the package "
            "(pip install --force-reinstall --no-deps <the course's address>), or remake the "
            "file with `python -m course_utils.transfer`"
        )
    return train.load_checkpoint(model, path).eval()


def offline_source() -> pretrained.Pretrained:
    """The offline source network as a :class:`pretrained.Pretrained` (inputs in [0, 1], 32x32)."""
    return pretrained.Pretrained(
        model=source_network(),
        name="smallcnn",
        weights=SOURCE_FILE,
        transforms=None,
        categories=datasets.SHAPES10_CLASSES,
        source="the offline source network, SmallCNN pretrained on shapes10",
        standin=True,
    )


@dataclass(frozen=True)
class TransferPair:
    """h_S (``source``) and T's splits, each an ``ImageData`` with (N, C, H, W) images;
    ``flip``: whether a mirrored image keeps its label (not for digits)."""

    source: pretrained.Pretrained
    train: datasets.ImageData
    val: datasets.ImageData
    test: datasets.ImageData
    flip: bool = True

    @property
    def standin(self) -> bool:
        return self.source.standin

    def viewable(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) as prepared for h_S, back in [0, 1] for display."""
        mean, std = (
            getattr(self.source.transforms, "mean", None),
            getattr(self.source.transforms, "std", None),
        )
        if mean is None or std is None:
            return x.clamp(0, 1)
        return (x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)).clamp(
            0, 1
        )

    def summary(self) -> str:
        """Two lines: what S and T are."""
        return (
            f"S: {self.source.source}, {len(self.source.categories):,} classes\n"
            f"T: {self.train.source}; val {len(self.val):,}, test {len(self.test):,} images, "
            f"{len(self.train.classes)} classes"
        )


def load_pair(
    name: str | None = "resnet18", *, eval_per_class: int | None = None, quiet: bool = False
) -> TransferPair:
    """The pair with torchvision's ImageNet ``name`` as h_S and Flowers-102 as T; ``name=None``,
    offline, or when either cannot be had: the offline pair, announced in one line.
    ``eval_per_class``: validate and test on the first that many images of each class only."""
    if name is not None:
        source = pretrained.load(name, quiet=quiet)
        if not source.standin:
            splits = [
                datasets.load_dataset(
                    "flowers102",
                    split,
                    transform=source.transforms,
                    per_class=eval_per_class if split != "train" else None,
                    quiet=True,
                )
                for split in TARGET_SPLITS
            ]
            if not any(s.standin for s in splits):
                return TransferPair(source, *splits)
            if not quiet:
                print(f"⚠ Flowers-102 could not be had, so S falls back too: {splits[0].source}")
    splits = [datasets.standin("flowers102", split) for split in TARGET_SPLITS]
    if eval_per_class is not None:
        splits[1:] = [datasets.first_per_class(s, eval_per_class) for s in splits[1:]]
    return TransferPair(offline_source(), *splits)


def shared_labels(source: tuple[str, ...], target: tuple[str, ...]) -> dict[str, list]:
    """How two label sets meet: ``identical`` names (case-insensitive), and ``contained`` pairs
    (a target name holding a source name as whole words: "oxeye daisy" holds "daisy")."""
    import re

    def words(name: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", name.lower())

    low = {name.lower(): name for name in source}
    identical = sorted(t for t in target if t.lower() in low)
    contained = []
    for t in target:
        padded = f" {' '.join(words(t))} "
        contained += [
            (s, t)
            for s in source
            if s.lower() != t.lower() and words(s) and f" {' '.join(words(s))} " in padded
        ]
    return {"identical": identical, "contained": sorted(contained, key=lambda pair: pair[1])}


def _prepared(
    data: datasets.ImageData, source: pretrained.Pretrained, note: str
) -> datasets.ImageData:
    """Gray images (N, 1, H, W) as h_S takes them: three channels, then the weights' transforms
    (resize, crop, normalise), or padded to 32 x 32 for the offline network."""
    x = data.x.expand(-1, 3, -1, -1)
    x = datasets.pad_to(x, 32) if source.transforms is None else source.transforms(x)
    return datasets.ImageData(
        x.contiguous(), data.y, data.classes, f"{data.source}, {note}", data.standin
    )


def digits_pair(source: pretrained.Pretrained, *, per_class: int = 100) -> TransferPair:
    """h_S with a target far from S: handwritten digits (MNIST online, scikit-learn's digits
    offline), gray strokes on black. The pool is the first ``per_class`` training digits of each
    class, the validation set the next ones (at most ``per_class``), the test set the first
    ``per_class`` test digits of each class."""
    train_split = datasets.load_dataset("mnist", "train", quiet=True)
    test = datasets.load_dataset("mnist", "test", quiet=True, per_class=per_class)
    ranks = torch.zeros(len(train_split), dtype=torch.long)
    for c in train_split.y.unique():
        members = torch.nonzero(train_split.y == c).flatten()
        ranks[members] = torch.arange(len(members))
    pool, val = ranks < per_class, (ranks >= per_class) & (ranks < 2 * per_class)
    note = "as 3-channel images for h_S"
    subsets = [
        datasets.ImageData(
            train_split.x[keep], train_split.y[keep], train_split.classes, name, train_split.standin
        )
        for keep, name in (
            (pool, f"{train_split.source}, the first {per_class} of each class"),
            (val, f"{train_split.source}, the next ones"),
        )
    ]
    return TransferPair(source, *(_prepared(d, source, note) for d in (*subsets, test)), flip=False)


def resized(pair: TransferPair, side: int, *, back_up: bool) -> TransferPair:
    """The pair with T's images shrunk to ``side`` x ``side`` (area averaging), and then, with
    ``back_up``, enlarged again to their size (bilinear): detail lost, scale kept."""
    import torch.nn.functional as F

    def shrink(data: datasets.ImageData) -> datasets.ImageData:
        full = data.x.shape[-1]
        x = F.interpolate(data.x, size=(side, side), mode="area")
        if back_up:
            x = F.interpolate(x, size=(full, full), mode="bilinear", align_corners=False)
        how = f"shrunk to {side}x{side}" + (
            f" and enlarged back to {full}x{full}" if back_up else ""
        )
        return datasets.ImageData(x, data.y, data.classes, f"{data.source}, {how}", data.standin)

    return TransferPair(
        pair.source, shrink(pair.train), shrink(pair.val), shrink(pair.test), pair.flip
    )


def source_task_pair() -> TransferPair:
    """The offline source network on its own task: shapes10 (pool 1,000, val and test 1,000)."""
    data = [datasets.shapes10(1_000, seed=seed) for seed in (5, 6, 7)]
    splits = [
        datasets.ImageData(
            x, y, datasets.SHAPES10_CLASSES, f"shapes10 ({split}, seed {seed})", True
        )
        for (x, y), split, seed in zip(data, TARGET_SPLITS, (5, 6, 7), strict=True)
    ]
    return TransferPair(offline_source(), *splits)


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
