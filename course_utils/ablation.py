"""Notebook 08's CIFAR-sized AlexNet recipe and its ablations: which parts of the network matter
(the lecture's table, after Zeiler and Fergus 2014, section 5.1, Table 3), with every variant
trained from scratch over several seeds so that a difference can be read against seed noise.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from . import models, train
from .loader import DeviceLoader

#: Each variant's switches for ``models.AlexNet`` (one change from the full network).
VARIANTS: dict[str, dict] = {
    "full network": {},
    "no LRN": {"lrn": False},
    "non-overlapping pooling": {"overlapping_pool": False},
    "no dropout": {"dropout": 0.0},
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


def _asset(name: str) -> Path:
    return Path(str(resources.files("course_utils").joinpath("assets", name)))


def measured(path: Path | None = None) -> dict:
    """The long ablation run shipped with the package (or at ``path``): the JSON line of
    ``benchmarks/alexnet_ablations.py`` (device, data, budget, per-variant accuracies per seed)."""
    path = Path(path) if path is not None else _asset(MEASURED)

    def share(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1

    def positive(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0

    try:
        record = json.loads(path.read_text())
        rows, seeds = record["variants"], record["seeds"]
        good = (
            "full network" in rows
            and isinstance(seeds, list)
            and len(seeds) > 0
            and all(isinstance(record[key], str) for key in ("device", "date", "data"))
            and all(positive(record[key]) for key in ("width", "images", "epochs", "seconds"))
            and all(
                len(row["accuracy"]) == len(seeds)
                and all(share(v) for v in (*row["accuracy"], row["mean"], row["low"], row["high"]))
                and isinstance(row["beyond_noise"], bool)
                for row in rows.values()
            )
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        good = False
    if not good:
        raise ValueError(
            f"{path} is missing or not a result of benchmarks/alexnet_ablations.py; restore it "
            "from the repository (git checkout) or run that script with --save"
        )
    return record


@dataclass(frozen=True)
class Recipe:
    """The CIFAR-sized AlexNet's training recipe: ``width`` scales every layer; AdamW with a
    one-cycle schedule peaking at ``lr``, weight decay 5e-4, gradients clipped to norm 2,
    random crops (4 pixels of padding) and flips."""

    width: float = 0.25
    batch: int = 64
    lr: float = 2e-3
    device: str | torch.device = "cpu"

    def new(self, seed: int = 0, conv1_scale: float = 1.0, **options) -> models.AlexNet:
        """A fresh (N, 3, 32, 32) -> (N, 10) AlexNet; the seed fixes its weights, ``conv1_scale``
        multiplies conv1's initial weights."""
        torch.manual_seed(seed)
        net = models.AlexNet(input_size=32, num_classes=10, width=self.width, **options)
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
        **options,
    ):
        """(model, History) after ``epochs`` on the first ``n`` images of ``train_set`` (its
        ``x`` (N, 3, 32, 32) and ``y``); ``val`` (a loader) is evaluated after every epoch."""
        if n is not None and not (isinstance(n, int) and 0 < n <= len(train_set.y)):
            raise ValueError(
                f"n must be a whole number of images from 1 to {len(train_set.y)} (or None: all); "
                f"got {n!r}"
            )
        model = self.new(seed, conv1_scale, **options)
        loader = DeviceLoader(
            train_set.x[:n],
            train_set.y[:n],
            batch_size=self.batch,
            crop_padding=4,
            flip=True,
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
    """Test accuracy per variant and seed (``accuracy[name][k]`` for ``seeds[k]``)."""

    seeds: tuple[int, ...]
    accuracy: dict[str, list[float]]

    def spread(self, name: str) -> tuple[float, float, float]:
        """(mean, lowest, highest) test accuracy of ``name`` over the seeds."""
        values = self.accuracy[name]
        return statistics.mean(values), min(values), max(values)

    def beyond_noise(self, name: str, reference: str = "full network") -> bool:
        """Whether the seed ranges of ``name`` and ``reference`` do not overlap (with three seeds
        a crude test, but one that could come out either way)."""
        _, low, high = self.spread(name)
        _, ref_low, ref_high = self.spread(reference)
        return high < ref_low or low > ref_high


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
    """Train every variant from scratch with each seed and measure its test accuracy, printing
    one line per variant as it finishes (``progress``). The variants' switches and the test set
    are checked before any training."""
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(
            f"seeds must be one or more different seeds; got {seeds} (a repeated seed repeats "
            "a run and makes the spread look smaller than it is)"
        )
    for name, options in dict(variants).items():
        try:
            with torch.device("meta"):
                models.AlexNet(input_size=32, num_classes=10, width=recipe.width, **options)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"variant {name!r}: {exc}") from None
    train.check_batch(
        recipe.new().eval(), test_set.x[:1].to(recipe.device), test_set.y.to(recipe.device)
    )
    test_loader = DeviceLoader(
        test_set.x, test_set.y, batch_size=1000, shuffle=False, device=recipe.device
    )
    accuracy = {}
    for number, (name, options) in enumerate(variants.items(), 1):
        start = time.perf_counter()
        accuracy[name] = [
            train.evaluate(recipe.train(train_set, epochs, n, seed, **options)[0], test_loader)[1]
            for seed in seeds
        ]
        if progress:
            shown = " ".join(f"{a:.1%}" for a in accuracy[name])
            print(
                f"variant {number}/{len(variants)} {name}: test accuracy {shown} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    return Ablation(tuple(seeds), accuracy)


def parameters(width: float, **options) -> tuple[int, int]:
    """Parameters of the variant ``options``: (the CIFAR-sized network at ``width``, the
    227-pixel network), counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        return tuple(
            sum(p.numel() for p in net.parameters())
            for net in (
                models.AlexNet(input_size=32, num_classes=10, width=width, **options),
                models.AlexNet(**options),
            )
        )


def parameter_table(width: float, quoted: dict[str, str]) -> str:
    """One line per variant: its parameters at ``width``, the weights it removes from the
    227-pixel network, and the ``quoted`` figures beside it."""
    quoted = quoted or {}
    full = parameters(width)[1]
    lines = [f"{'variant':26s} {'params (ours)':>13s} {'fewer (227)':>12s}  lecture (quoted)"]
    for name, options in VARIANTS.items():
        small, big = parameters(width, **options)
        lines.append(f"{name:26s} {small:>13,} {full - big:>12,}  {quoted.get(name, '')}")
    return "\n".join(lines)


def result_table(result: Ablation, width: float, quoted: dict[str, str]) -> str:
    """The trained table: each variant's accuracy per seed, its drop from the full network,
    whether it lies beyond seed noise, its parameters and the ``quoted`` figures; then what a
    reader must know to read it (the full network's range, a network near chance, variants
    ahead of every seed of the full network)."""
    if "full network" not in result.accuracy:
        raise ValueError(
            "the table reads every variant against the full network: train a 'full network' "
            "variant too (ablation.VARIANTS has it)"
        )
    quoted = quoted or {}
    full_acc, full_low, full_high = result.spread("full network")
    full_big = parameters(width)[1]
    lines = [
        f"{'variant':26s} {'test acc (seeds)':>22s} {'drop':>7s} {'beyond noise':>12s} "
        f"{'params (ours)':>13s} {'fewer (227)':>12s}  lecture (quoted)"
    ]
    for name in result.accuracy:
        acc, _, _ = result.spread(name)
        if name in VARIANTS:
            small, big = parameters(width, **VARIANTS[name])
            sizes = f"{small:>13,} {full_big - big:>12,}"
        else:  # a variant of the reader's own: its switches are not known here
            sizes = f"{'-':>13s} {'-':>12s}"
        seeds = " ".join(f"{a:.1%}" for a in result.accuracy[name])
        one_seed = len(result.accuracy[name]) == 1  # one draw against a range of three: 50 % alarms
        noise = (
            "-"
            if name == "full network" or one_seed
            else "yes"
            if result.beyond_noise(name)
            else "no"
        )
        lines.append(
            f"{name:26s} {seeds:>22s} {full_acc - acc:+7.1%} {noise:>12s} {sizes}  "
            f"{quoted.get(name, '')}"
        )
    lines.append(
        f"\nfull network over {len(result.accuracy['full network'])} seeds: {full_low:.1%} to "
        f"{full_high:.1%}; 'beyond noise': the variant's seeds all lie outside that range ('-' for "
        "one seed: with no real difference, one draw lies outside a range of three half the time)"
    )
    if full_acc < 2 * 0.1:  # ten classes: chance is 10 %
        lines.append(
            f"The full network reached only {full_acc:.0%} on this budget, close to chance (10 %): "
            "it has barely started to learn, so the drops above say which variant starts fastest, "
            "not what its layers are worth."
        )
    ahead = [name for name in result.accuracy if result.spread(name)[1] > full_high]
    if ahead:
        lines.append(
            f"Ahead of every seed of the full network: {', '.join(ahead)}. On a budget this short, "
            "fewer weights to fit (or no dropout, which the paper says doubles the iterations "
            "needed) can mean faster early learning."
        )
    return "\n".join(lines)


def long_run_table(run: dict) -> str:
    """The long run of :func:`measured`: where and how it was measured, each variant's accuracy
    per seed, mean and drop, and which variants lie beyond seed noise in which direction."""
    missing = [
        k
        for k in (
            "device",
            "date",
            "data",
            "width",
            "epochs",
            "images",
            "seeds",
            "seconds",
            "variants",
        )
        if k not in run
    ]
    if missing or "full network" not in run.get("variants", {}):
        raise ValueError(
            f"not a result of benchmarks/alexnet_ablations.py (missing {missing or 'full network'}):"
            " read it with ablation.measured()"
        )
    lines = [
        f"benchmarks/alexnet_ablations.py on {run['device']}, {run['date']}: {run['data']}, "
        f"width {run['width']}, {run['epochs']} epochs on {run['images']:,} images, "
        f"seeds {run['seeds']} ({run['seconds'] / 60:.0f} min)",
        f"{'variant':26s} {'test acc per seed':>24s} {'mean':>7s} {'drop':>7s}  beyond noise",
    ]
    reference = run["variants"]["full network"]["mean"]
    for name, row in run["variants"].items():
        seeds = " ".join(f"{a:.1%}" for a in row["accuracy"])
        noise = "-" if name == "full network" else "yes" if row["beyond_noise"] else "no"
        lines.append(
            f"{name:26s} {seeds:>24s} {row['mean']:7.1%} {reference - row['mean']:+7.1%}  {noise}"
        )
    clear = {n: row["mean"] for n, row in run["variants"].items() if row["beyond_noise"]}
    better = [n for n, mean in clear.items() if mean > reference]
    worse = [n for n, mean in clear.items() if mean < reference]
    lines.append(
        f"\nbeyond seed noise, better than the full network: {', '.join(better) or 'none'}; "
        f"worse: {', '.join(worse) or 'none'}"
    )
    return "\n".join(lines)


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
