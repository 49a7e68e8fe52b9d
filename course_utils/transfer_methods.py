"""Notebook 10's methods and controls on a transfer pair, measured against labels per class.

:class:`Experiment` draws ``k`` labelled target images per class (``features.few_shot``), applies
one method, and returns its accuracy on the target's test set. Methods (:data:`METHODS`):

- fine-tuning h_S with a new head, SGD with momentum 0.9 and weight decay 5e-4: pretrained
  layers at ``lr / 10`` and the new head at ``lr`` (the lecture's 0.001 and 0.01), or every layer
  at ``lr``; with the lower half of the blocks frozen; or unfrozen progressively;
- training only the normalisation layers' scale and shift and the head, with batch norm's
  running statistics re-estimated on the target's labelled images or kept from S;
- h_S as a fixed feature extractor with scikit-learn classifiers;
- controls: the same architecture from scratch (AdamW, its learning rate, and its number of steps
  when the budget offers several, chosen per k on the target's validation set, never the test
  set), a network with random
  weights plus the same linear probe, and a linear classifier on the pixels.

Every trained method sees the same images with the same augmentation (random crops of +-1/16 of
the side with zero padding, and horizontal flips where they keep the label) and, but for scratch,
the same number of steps. The frozen-feature methods see the drawn images as they are.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from course_utils import features, finetune, models, pretrained, train
from course_utils.loader import DeviceLoader

METHODS = {
    "scratch": "random weights, every layer trained (learning rate and any steps grid chosen on T's validation set)",
    "fine-tune": "h_S with a new head: pretrained layers at lr/10, the head at lr",
    "fine-tune, one lr": "the same with every layer at lr",
    "head only": "h_S frozen, only the new head trained (SGD at lr), as Solution II with the network's own head",
    "frozen lower": "the lower half of the blocks frozen, the rest fine-tuned as above",
    "progressive": "the head alone, then the upper half of the blocks too, then all (a third of the steps each)",
    "norm-only": "only the norm layers' scale and shift and the head train; statistics re-estimated on T",
    "norm-only, S statistics": "the same, keeping S's running statistics",
    "probe": "frozen h_S features, standardised, + logistic regression",
    "k-NN": "frozen h_S features + nearest neighbours by cosine similarity",
    "random probe": "features of random weights (norm statistics from T's images) + logistic regression",
    "pixels": "logistic regression on the pixels (at most 32 x 32)",
}
FEATURE_METHODS = ("probe", "k-NN", "random probe", "pixels")
#: Methods with nothing random but the drawn images.
SEEDLESS = ("probe", "k-NN", "pixels")
#: k for "every labelled image of the pool".
ALL = "all"


@dataclass(frozen=True)
class Budget:
    """Steps and learning rates: ``steps`` per trained run at batches of ``batch_size``; ``lr``
    is the new head's (pretrained layers get lr / 10); scratch chooses among ``scratch_lrs`` and
    ``scratch_steps`` on the validation set."""

    steps: int = 30
    batch_size: int = 32
    lr: float = 0.01
    scratch_lrs: tuple[float, ...] = (1e-3, 3e-3)
    scratch_steps: tuple[int, ...] = (150,)


@dataclass
class Results:
    """Rows ``{"method", "k", "seed", "accuracy", ...}``; :meth:`summary` gives mean and spread."""

    rows: list[dict] = field(default_factory=list)

    def summary(
        self, by: tuple[str, ...] = ("method", "k")
    ) -> dict[tuple, tuple[float, float, int]]:
        """{key: (mean, sample standard deviation, number of runs)} over the rows sharing ``by``."""
        groups: dict[tuple, list[float]] = {}
        for row in self.rows:
            groups.setdefault(tuple(row[b] for b in by), []).append(row["accuracy"])
        return {
            key: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, len(v))
            for key, v in groups.items()
        }

    def mean(self, *key) -> float:
        return self.summary(("method", "k") if len(key) == 2 else ("method", "k", "block"))[key][0]

    def table(self, by: tuple[str, ...] = ("method", "k")) -> str:
        """One line per key: mean +- std in percent, and n."""
        lines = []
        for key, (mean, std, n) in self.summary(by).items():
            name = "  ".join(
                f"{str(k):>24s}" if i == 0 else f"{str(k):>5s}" for i, k in enumerate(key)
            )
            lines.append(f"{name}  {100 * mean:5.1f} % ± {100 * std:4.1f}  (n={n})")
        return "\n".join(lines)


class Experiment:
    """Methods on one :class:`transfer.TransferPair`, on ``device``, with a :class:`Budget`."""

    def __init__(self, pair, *, budget: Budget = Budget(), device=None, progress: bool = True):
        self.pair, self.budget, self.progress = pair, budget, progress
        self.device = torch.device(device or "cpu")
        self.num_classes = len(pair.train.classes)
        self.per_class = int(pair.train.y.bincount().min())
        side = pair.train.x.shape[-1]
        self.crop_padding = max(1, side // 16)
        self.scratch_recipes: dict = {}
        self._scratch_seed0: dict = {}
        self._accuracies: dict[tuple, float] = {}
        self._source_features: dict[str, torch.Tensor] = {}
        self.test_loader = DeviceLoader(
            pair.test.x, pair.test.y, batch_size=250, shuffle=False, device=self.device
        )

    # ---------------------------------------------------------------- data
    def labels_per_class(self, ks=(1, 2, 5, 10), *, include_all: bool = True) -> list:
        """``ks`` that the pool can give, then :data:`ALL` if the pool has more per class."""
        kept = [k for k in ks if k <= self.per_class]
        more = include_all and self.per_class > max(kept, default=0)
        return kept + ([ALL] if more else [])

    def draw(self, k, seed: int) -> torch.Tensor:
        """Indices into the pool: ``k`` per class drawn by ``seed`` (every image for :data:`ALL`)."""
        if k == ALL:
            return torch.arange(len(self.pair.train))
        return features.few_shot(self.pair.train.y, k, seed=seed)

    # ---------------------------------------------------------------- one run
    def accuracy(self, method: str, k, seed: int) -> float:
        """Test accuracy of ``method`` trained on ``k`` labels per class drawn by ``seed``
        (measured once; a second call returns the same run's figure)."""
        if not isinstance(method, str) or method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
            raise ValueError(f"seed must be a whole number (0, 1, 2, ...); got {seed!r}")
        seed = int(seed)
        if k == ALL and method in SEEDLESS:  # every seed draws the same images: one fit
            seed = 0
        if (method, k, seed) not in self._accuracies:
            index = self.draw(k, seed)
            if method in FEATURE_METHODS:
                accuracy = self._feature_method(method, index, seed)
            else:
                accuracy = train.evaluate(self._trained(method, k, index, seed), self.test_loader)[
                    1
                ]
            self._accuracies[method, k, seed] = accuracy
        return self._accuracies[method, k, seed]

    def _loader(self, index: torch.Tensor, seed: int) -> DeviceLoader:
        x, y = self.pair.train.x[index], self.pair.train.y[index]
        return DeviceLoader(
            x,
            y,
            batch_size=min(self.budget.batch_size, len(y)),
            crop_padding=self.crop_padding,
            flip=self.pair.flip,
            device=self.device,
            seed=seed,
        )

    def fresh_network(self, seed: int) -> torch.nn.Module:
        """h_S's architecture with random weights (its own initialisation) for T's classes."""
        torch.manual_seed(seed)
        source = self.pair.source
        if isinstance(source.model, models.SmallCNN):
            model = models.SmallCNN(num_classes=self.num_classes)
        else:
            from torchvision.models import get_model

            model = get_model(source.name, weights=None, num_classes=self.num_classes)
        return model.to(self.device)

    def new_head_network(self, seed: int) -> tuple[torch.nn.Module, torch.nn.Linear]:
        """A copy of h_S with a new classifier for T's classes: (model, new head)."""
        model = copy.deepcopy(self.pair.source.model).to(self.device)
        torch.manual_seed(seed)
        return model, pretrained.replace_classifier(model, self.num_classes)

    def _sgd(self, groups) -> torch.optim.Optimizer:
        return torch.optim.SGD(groups, momentum=0.9, weight_decay=5e-4)

    def _trained(self, method: str, k, index: torch.Tensor, seed: int) -> torch.nn.Module:
        loader, lr, steps = self._loader(index, seed), self.budget.lr, self.budget.steps
        if method == "scratch":
            chosen = self.scratch_recipes.get(k) or self.tune_scratch([k])[k]
            if seed == 0:  # the tuning run itself
                return self._scratch_seed0[k]
            model = self.fresh_network(seed)
            optimizer = torch.optim.AdamW(model.parameters(), lr=chosen["lr"], weight_decay=5e-4)
            finetune.fit_steps(model, loader, optimizer, chosen["steps"])
            return model
        model, head = self.new_head_network(seed)
        head_params = list(head.parameters())
        body = [p for p in model.parameters() if all(p is not h for h in head_params)]
        two_rates = [{"params": body, "lr": lr / 10}, {"params": head_params, "lr": lr}]
        stages = [module for _, module in finetune.blocks(model)[:-1]]
        lower, upper = stages[: len(stages) // 2], stages[len(stages) // 2 :]
        if method == "fine-tune":
            finetune.fit_steps(model, loader, self._sgd(two_rates), steps)
        elif method == "fine-tune, one lr":
            finetune.fit_steps(
                model, loader, self._sgd([{"params": body + head_params, "lr": lr}]), steps
            )
        elif method == "frozen lower":
            finetune.freeze(*lower)
            finetune.fit_steps(model, loader, self._sgd(two_rates), steps)
        elif method == "head only":
            finetune.freeze(*stages)
            finetune.fit_steps(model, loader, self._sgd([{"params": head_params, "lr": lr}]), steps)
        elif method == "progressive":
            optimizer = self._sgd(two_rates)
            held = [(lower, finetune.freeze(*lower)), (upper, finetune.freeze(*upper))]
            for thawed in (None, held[1], held[0]):
                if thawed is not None:
                    finetune.unfreeze(*thawed)
                finetune.fit_steps(model, loader, optimizer, max(1, steps // 3))
        else:  # the two norm-only methods
            norms = finetune.norm_parameters(model)
            if method == "norm-only":
                finetune.estimate_norm_statistics(model, loader.x)
            finetune.freeze(*stages)
            for p in norms:
                p.requires_grad_(True)
            finetune.fit_steps(
                model, loader, self._sgd([{"params": norms + head_params, "lr": lr}]), steps
            )
        return model

    # ---------------------------------------------------------------- frozen features
    def source_features(self, split: str) -> torch.Tensor:
        """h_S's features (what its head reads) for the pool ("train") or the test set, once."""
        if split not in self._source_features:
            model = self.pair.source.model.to(self.device)
            node = list(finetune.block_nodes(model).values())[-1]
            images = self.pair.train.x if split == "train" else self.pair.test.x
            self._source_features[split] = features.extract(
                model, images, [node], device=self.device
            )[node]
        return self._source_features[split]

    def _feature_method(self, method: str, index: torch.Tensor, seed: int) -> float:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        y, y_test = self.pair.train.y[index].numpy(), self.pair.test.y.numpy()
        if method in ("probe", "k-NN"):
            f, f_test = self.source_features("train")[index], self.source_features("test")
        elif method == "random probe":
            model = self.fresh_network(seed)
            finetune.estimate_norm_statistics(model, self.pair.train.x[index])
            node = list(finetune.block_nodes(model).values())[-1]
            f = features.extract(model, self.pair.train.x[index], [node])[node]
            f_test = features.extract(model, self.pair.test.x, [node])[node]
        else:  # pixels, at most 32 x 32
            f, f_test = _pixels(self.pair.train.x[index]), _pixels(self.pair.test.x)
        if method == "k-NN":
            neighbours = min(5, len(index) // self.num_classes)
            classifier = KNeighborsClassifier(neighbours, weights="distance", metric="cosine")
        else:
            classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        classifier.fit(f.numpy(), y)
        return float(classifier.score(f_test.numpy(), y_test))

    # ---------------------------------------------------------------- controls and curves
    def tune_scratch(self, ks) -> dict:
        """For each k: the scratch baseline's (lr, steps) of the budget's grid with the best
        accuracy on the target's validation set, trained on the draw of seed 0; stored for
        :meth:`accuracy`, which reuses that run as its seed 0."""
        val = DeviceLoader(
            self.pair.val.x, self.pair.val.y, batch_size=250, shuffle=False, device=self.device
        )
        for k in ks:
            best = None
            for lr in self.budget.scratch_lrs:
                for steps in self.budget.scratch_steps:
                    model = self.fresh_network(0)
                    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
                    finetune.fit_steps(model, self._loader(self.draw(k, 0), 0), optimizer, steps)
                    accuracy = train.evaluate(model, val)[1]
                    if best is None or accuracy > best[0]:
                        best = (accuracy, lr, steps, model)
            accuracy, lr, steps, model = best
            self.scratch_recipes[k] = {"lr": lr, "steps": steps, "val_accuracy": round(accuracy, 4)}
            self._scratch_seed0[k] = model
        return self.scratch_recipes

    def curve(self, methods, ks, seeds: int) -> Results:
        """Every method at every k, over ``seeds`` draws (and initialisations) each."""
        runs = [(m, k, s) for k in _checked_ks(ks, seeds) for m in methods for s in range(seeds)]
        results = Results()
        for method, k, seed in train.progress_bar(runs, desc="runs", disable=not self.progress):
            results.rows.append(
                {"method": method, "k": k, "seed": seed, "accuracy": self.accuracy(method, k, seed)}
            )
        return results

    def layer_probes(self, ks, seeds: int, *, pool: int = 2) -> Results:
        """A linear probe on every block's output (average-pooled to pool x pool) of h_S and of
        random weights (method "pretrained" / "random"), at each k, over ``seeds`` draws."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        results = Results()
        source = self.pair.source.model.to(self.device)
        nodes = finetune.block_nodes(source)
        pool_x, test_x = self.pair.train.x, self.pair.test.x
        ks = _checked_ks(ks, seeds)
        draws = {(seed, k): self.draw(k, seed) for seed in range(seeds) for k in ks}
        used = torch.cat(list(draws.values())).unique()  # sorted: only these pool images are read
        pretrained_features = (
            features.extract(source, pool_x[used], list(nodes.values()), pool=pool),
            features.extract(source, test_x, list(nodes.values()), pool=pool),
        )
        for seed in range(seeds):
            random_model = self.fresh_network(seed)
            for k in ks:
                index = draws[seed, k]
                finetune.estimate_norm_statistics(random_model, pool_x[index])
                rows = torch.searchsorted(used, index)  # where each drawn image sits in `used`
                drawn = {n: f[rows] for n, f in pretrained_features[0].items()}
                random_features = (
                    features.extract(random_model, pool_x[index], list(nodes.values()), pool=pool),
                    features.extract(random_model, test_x, list(nodes.values()), pool=pool),
                )
                for name, (f, f_test) in (
                    ("pretrained", (drawn, pretrained_features[1])),
                    ("random", random_features),
                ):
                    for block, node in nodes.items():
                        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
                        probe.fit(f[node].numpy(), self.pair.train.y[index].numpy())
                        accuracy = float(
                            probe.score(f_test[node].numpy(), self.pair.test.y.numpy())
                        )
                        results.rows.append(
                            {
                                "method": name,
                                "k": k,
                                "block": block,
                                "seed": seed,
                                "accuracy": accuracy,
                            }
                        )
        return results


def _checked_ks(ks, seeds) -> list:
    """``ks`` (labels per class) as a list, once it and ``seeds`` (how many draws) make sense."""
    if isinstance(ks, (str, numbers.Number)) or not isinstance(ks, Iterable):
        raise ValueError(f"ks is a list of labels per class, such as [1, 5] or [ALL]; got {ks!r}")
    ks = list(ks)
    whole = isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool)
    if not ks or not whole or seeds < 1:
        raise ValueError(
            f"need at least one k and a whole number of seeds >= 1; got ks {ks}, seeds {seeds!r}"
        )
    return ks


def _pixels(x: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) as (N, C * h * w) pixels, area-downsampled to at most 32 x 32."""
    if x.shape[-1] > 32:
        x = F.adaptive_avg_pool2d(x, 32)
    return x.flatten(1)
