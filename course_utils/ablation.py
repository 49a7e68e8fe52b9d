"""Notebook 08's CIFAR-sized AlexNet recipe and its ablations: which parts of the network matter
(the lecture's table, after Zeiler and Fergus 2014, section 5.1, Table 3) and what augmentation and
dropout do against overfitting, with every variant trained from scratch over several seeds so that
a difference can be read against seed noise. The tables are in :mod:`course_utils.ablation_tables`.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch

from . import models, train
from .loader import DeviceLoader

#: Each variant's switches (one change from the full network): ``models.AlexNet``'s, and the
#: recipe's ``augment`` (random crops and flips while training).
VARIANTS: dict[str, dict] = {
    "full network": {},
    "no LRN": {"lrn": False},
    "non-overlapping pooling": {"overlapping_pool": False},
    "no dropout": {"dropout": 0.0},
    "no augmentation": {"augment": False},
    "remove layer 7": {"remove": ("fc7",)},
    "remove layers 6, 7": {"remove": ("fc6", "fc7")},
    "remove layers 3, 4": {"remove": ("conv3", "conv4")},
    "remove layers 3, 4, 6, 7": {"remove": ("conv3", "conv4", "fc6", "fc7")},
}


#: Where ``benchmarks/alexnet_ablations.py --save`` writes the long run notebook 08 shows.
MEASURED = "alexnet_ablations.json"
#: The shipped CIFAR-sized AlexNet whose conv1 kernels notebook 08 shows offline, and how
#: ``python -m course_utils.ablation`` trained it (on the shapes10 stand-in of CIFAR-10). Its conv1
#: starts at a tenth of the usual initial weights (the paper's N(0, 0.01^2) start was small too),
#: so that what training writes into the kernels is not hidden under the random start.
TRAINED = "alexnet_shapes10.pt"
TRAINED_RECIPE = {"width": 0.25, "epochs": 15, "images": 10_000, "seed": 0, "conv1_scale": 0.1}


def network_switches(options: dict) -> dict:
    """A variant's switches for ``models.AlexNet``: all but the recipe's ``augment``."""
    return {key: value for key, value in options.items() if key != "augment"}


def range_side(values, reference) -> int:
    """1 if every value lies above every ``reference`` value, -1 if below, 0 if the two ranges
    overlap: a difference read against seed noise (with three seeds a crude test, but one that
    could come out either way)."""
    return 1 if min(values) > max(reference) else -1 if max(values) < min(reference) else 0


def _check_augment(augment) -> None:
    if not isinstance(augment, bool):
        raise ValueError(f"augment must be True or False (a Python bool); got {augment!r}")


def check_accuracies(name, values) -> None:
    """A variant's accuracies: one or more numbers from 0 to 1 (ValueError naming ``name``)."""
    if not (
        isinstance(values, (list, tuple))
        and values
        and all(type(v) in (int, float) and 0 <= v <= 1 for v in values)
    ):
        raise ValueError(
            f"variant {name!r}: accuracies must be a list of one or more numbers from 0 to 1, one "
            f"per seed (a tensor: .item(); a percentage: divide by 100); got {values!r}"
        )


def _check_images(n, train_set) -> None:
    if n is not None and not (type(n) is int and 0 < n <= len(train_set.y)):
        raise ValueError(
            f"n must be a whole number of images from 1 to {len(train_set.y)} (or None: all); "
            f"got {n!r}"
        )


def _asset(name: str) -> Path:
    return Path(str(resources.files("course_utils").joinpath("assets", name)))


def measured(path: Path | None = None) -> dict:
    """The long ablation run shipped with the package (or at ``path``): the JSON line of
    ``benchmarks/alexnet_ablations.py`` (device, data, budget, per-variant test and training
    accuracies and losses per seed)."""
    path = Path(path) if path is not None else _asset(MEASURED)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        record = None
    if not is_long_run(record):
        raise ValueError(
            f"{path} is missing or not a result of benchmarks/alexnet_ablations.py; restore it "
            "from the repository (git checkout) or run that script with --save"
        )
    return record


def is_long_run(record) -> bool:
    """Whether ``record`` is a whole line of ``benchmarks/alexnet_ablations.py``: every field
    there, each variant's lists one entry per (different) seed, accuracies between 0 and 1,
    losses finite and not negative. Means and ranges are recomputed from the lists, not read."""

    def share(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1

    def loss(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < float("inf")

    def positive(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0

    try:
        rows, seeds = record["variants"], record["seeds"]
        return bool(
            "full network" in rows
            and isinstance(seeds, list)
            and len(seeds) > 0
            and len(set(seeds)) == len(seeds)
            and all(isinstance(record[key], str) for key in ("device", "date", "data"))
            and all(positive(record[key]) for key in ("width", "images", "epochs", "seconds"))
            and all(
                len(seeds)
                == len(row["accuracy"])
                == len(row["train_accuracy"])
                == len(row["test_loss"])
                == len(row["train_loss"])
                and all(share(v) for v in (*row["accuracy"], *row["train_accuracy"]))
                and all(loss(v) for v in (*row["test_loss"], *row["train_loss"]))
                for row in rows.values()
            )
        )
    except (KeyError, TypeError, AttributeError):
        return False


@dataclass(frozen=True)
class Recipe:
    """The CIFAR-sized AlexNet's training recipe: ``width`` scales every layer; AdamW with a
    one-cycle schedule peaking at ``lr``, weight decay 5e-4, gradients clipped to norm 2,
    random crops (4 pixels of padding) and flips unless ``train(augment=False)``."""

    width: float = 0.25
    batch: int = 64
    lr: float = 2e-3
    device: str | torch.device = "cpu"

    def new(self, seed: int = 0, conv1_scale: float = 1.0, **options) -> models.AlexNet:
        """A fresh (N, 3, 32, 32) -> (N, 10) AlexNet; the seed fixes its weights, ``conv1_scale``
        multiplies conv1's initial weights."""
        torch.manual_seed(seed)
        switches = network_switches(options)  # a variant's augment is the training's, not the net's
        net = models.AlexNet(input_size=32, num_classes=10, width=self.width, **switches)
        with torch.no_grad():
            net.features[0].weight.mul_(conv1_scale)
        return net.to(self.device)

    def train(
        self,
        train_set,
        epochs: int,
        n: int | None = None,
        seed: int = 0,
        val=None,
        progress: bool = False,
        conv1_scale: float = 1.0,
        augment: bool = True,
        **options,
    ):
        """(model, History) after ``epochs`` on the first ``n`` images of ``train_set`` (its
        ``x`` (N, 3, 32, 32) and ``y``); ``val`` (a loader) is evaluated after every epoch;
        ``augment=False`` trains on the images as they are (no crops, no flips)."""
        _check_images(n, train_set)
        _check_augment(augment)
        model = self.new(seed, conv1_scale, **options)
        loader = DeviceLoader(
            train_set.x[:n],
            train_set.y[:n],
            batch_size=self.batch,
            crop_padding=4 if augment else 0,
            flip=augment,
            device=self.device,
            seed=seed,
        )
        history = train.fit(
            model,
            loader,
            epochs=epochs,
            lr=self.lr,
            scheduler="onecycle",
            weight_decay=5e-4,
            max_grad_norm=2.0,
            val=val,
            progress=progress,
        )
        return model, history


@dataclass
class Ablation:
    """Test accuracy per variant and seed (``accuracy[name][k]`` for ``seeds[k]``; a variant
    added by :meth:`update` may have fewer, the first seeds); accuracy on the images it trained
    on, unaugmented (``train_accuracy``), and the mean cross-entropy on both (``train_loss``,
    ``test_loss``), each empty when not measured."""

    seeds: tuple[int, ...]
    accuracy: dict[str, list[float]]
    train_accuracy: dict[str, list[float]] = field(default_factory=dict)
    train_loss: dict[str, list[float]] = field(default_factory=dict)
    test_loss: dict[str, list[float]] = field(default_factory=dict)

    def spread(self, name: str) -> tuple[float, float, float]:
        """(mean, lowest, highest) test accuracy of ``name`` over the seeds."""
        values = self.accuracy[name]
        return statistics.mean(values), min(values), max(values)

    def beyond_noise(self, name: str, reference: str = "full network") -> bool:
        """Whether the test-accuracy seed ranges of ``name`` and ``reference`` do not overlap
        (:func:`range_side`)."""
        return range_side(self.accuracy[name], self.accuracy[reference]) != 0

    def gaps(self, name: str) -> list[float]:
        """Test minus training loss per seed (cross-entropy, nats): how much worse ``name`` fits
        new images than the ones it trained on (overfitting). Unlike training minus test
        accuracy, it has no ceiling when the test accuracy nears 100 %."""
        seen, test = (self.train_loss or {}).get(name), (self.test_loss or {}).get(name)
        if seen is None or test is None or len(seen) != len(test):
            raise ValueError(
                f"variant {name!r} needs a test and a training loss for each seed; got "
                f"{test!r} and {seen!r} (ablate() measures both)"
            )
        return [t - s for s, t in zip(seen, test, strict=True)]

    def update(self, other: Ablation) -> None:
        """Add ``other``'s variants, trained separately with these seeds or the first of them;
        a variant in both takes all of ``other``'s lists (accuracies and losses)."""
        if not isinstance(other, Ablation) or tuple(self.seeds[: len(other.seeds)]) != tuple(
            other.seeds
        ):
            raise ValueError(
                f"update() takes the Ablation that ablate() returns, trained with seeds "
                f"{tuple(self.seeds)} or the first of them; got {other!r}"
            )
        for table in ("train_accuracy", "train_loss", "test_loss"):
            mine, theirs = getattr(self, table) or {}, getattr(other, table) or {}
            kept = {k: v for k, v in mine.items() if k not in other.accuracy}
            setattr(self, table, {**kept, **theirs})
        self.accuracy.update(other.accuracy)


def ablate(
    recipe: Recipe,
    train_set,
    test_set,
    *,
    epochs: int,
    n: int | None,
    seeds=(0, 1, 2),
    variants: dict[str, dict] = VARIANTS,
    progress: bool = True,
) -> Ablation:
    """Train every variant from scratch with each seed and measure its test accuracy and loss and
    its accuracy and loss on the ``n`` training images (unaugmented, dropout off), printing one line per variant
    as it finishes (``progress``). The variants' switches and the test set are checked before any
    training."""
    seeds = tuple(seeds) if isinstance(seeds, (list, tuple, range)) else seeds
    if not (
        isinstance(seeds, tuple)
        and seeds
        and all(type(s) is int for s in seeds)
        and len(set(seeds)) == len(seeds)
    ):
        raise ValueError(
            f"seeds must be one or more different whole numbers, e.g. (0, 1, 2); got {seeds!r} "
            "(a repeated seed repeats a run and makes the spread look smaller than it is)"
        )
    if type(epochs) is not int or epochs < 1:
        raise ValueError(f"epochs must be a whole number of at least 1; got {epochs!r}")
    _check_images(n, train_set)
    try:
        variants = dict(variants)
    except (TypeError, ValueError):
        raise ValueError(
            f"variants must be a dict of name -> switches, like ablation.VARIANTS; got {variants!r}"
        ) from None
    for name, options in variants.items():
        try:
            if not isinstance(name, str):
                raise TypeError("its name must be a string")
            if not isinstance(options, dict):
                raise TypeError(
                    f"its switches must be a dict like {{'lrn': False}}; got {options!r}"
                )
            _check_augment(options.get("augment", True))
            with torch.device("meta"):
                models.AlexNet(
                    input_size=32, num_classes=10, width=recipe.width, **network_switches(options)
                )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"variant {name!r}: {exc}") from None
    train.check_batch(
        recipe.new().eval(), test_set.x[:1].to(recipe.device), test_set.y.to(recipe.device)
    )

    def loader(data, count=None):
        return DeviceLoader(
            data.x[:count], data.y[:count], batch_size=1000, shuffle=False, device=recipe.device
        )

    test_loader, seen_loader = loader(test_set), loader(train_set, n)
    result = Ablation(seeds, {})
    for number, (name, options) in enumerate(variants.items(), 1):
        start = time.perf_counter()
        trained = [recipe.train(train_set, epochs, n, seed, **options)[0] for seed in seeds]
        tested = [train.evaluate(m, test_loader) for m in trained]  # (loss, accuracy) per seed
        seen = [train.evaluate(m, seen_loader) for m in trained]
        result.test_loss[name], result.accuracy[name] = map(list, zip(*tested, strict=True))
        result.train_loss[name], result.train_accuracy[name] = map(list, zip(*seen, strict=True))
        if progress:
            shown = " ".join(f"{a:.1%}" for a in result.accuracy[name])
            print(
                f"variant {number}/{len(variants)} {name}: test accuracy {shown} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    return result


def parameters(width: float, **options) -> tuple[int, int]:
    """Parameters of the variant ``options``: (the CIFAR-sized network at ``width``, the
    227-pixel network), counted on the meta device (nothing is allocated)."""
    switches = network_switches(options)
    with torch.device("meta"):
        return tuple(
            sum(p.numel() for p in net.parameters())
            for net in (
                models.AlexNet(input_size=32, num_classes=10, width=width, **switches),
                models.AlexNet(**switches),
            )
        )


def trained_alexnet(device="cpu", path: Path | None = None) -> models.AlexNet:
    """The shipped CIFAR-sized AlexNet of :data:`TRAINED_RECIPE` (or the one at ``path``), its
    sha256 verified, in eval mode."""
    model = Recipe(width=TRAINED_RECIPE["width"]).new()
    fix = "restore it from the repository (git checkout) or retrain it: python -m course_utils.ablation --force"
    return train.load_checkpoint(model, path or _asset(TRAINED), fix=fix).to(device).eval()


def main(argv: list[str] | None = None) -> None:
    """Train the shipped network (:data:`TRAINED_RECIPE`) and write it with its sha256."""
    import argparse

    from . import datasets

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=_asset(TRAINED))
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    if args.out.is_dir() or not args.out.name or not args.out.parent.is_dir():
        parser.error(f"--out {args.out} must be a file name in an existing folder")
    if args.out.exists() and not args.force:
        parser.error(f"{args.out} exists; add --force to replace it (and its .sha256)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_set = datasets.load_dataset("cifar10", "train", download=False, quiet=True)
    test_set = datasets.load_dataset("cifar10", "test", download=False, quiet=True)
    if not train_set.standin:
        raise SystemExit(
            "the shipped network is trained on the shapes10 stand-in: run with COURSE_OFFLINE=1"
        )
    recipe = Recipe(width=TRAINED_RECIPE["width"], device=device)
    model, _ = recipe.train(
        train_set,
        TRAINED_RECIPE["epochs"],
        TRAINED_RECIPE["images"],
        TRAINED_RECIPE["seed"],
        progress=True,
        conv1_scale=TRAINED_RECIPE["conv1_scale"],
    )
    test = DeviceLoader(test_set.x, test_set.y, batch_size=1000, shuffle=False, device=device)
    print(f"test accuracy {train.evaluate(model, test)[1]:.2%}; writing {args.out}")
    train.save_checkpoint(model.cpu(), args.out)


if __name__ == "__main__":
    main()
