"""ReLU against tanh as the AlexNet paper measured it (Krizhevsky et al. 2012, figure 1): how
many SGD steps a plain network needs to reach a training error, each activation at the learning
rate that suits it best, over several seeds.

The paper's figure: a four-layer convolutional network on CIFAR-10, no regularisation, each
network's learning rate chosen to train as fast as possible; ReLU reached 25 % training error six
times faster than tanh. :func:`race` repeats that protocol at any scale: the learning rate of
each activation is chosen on a grid with one seed, then the steps are measured with fresh seeds
(so that the choice does not flatter the measurement).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import train
from .loader import DeviceLoader

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def four_layer_cnn(
    activation: str = "relu",
    *,
    channels: Sequence[int] = (32, 32, 64),
    in_channels: int = 3,
    side: int = 32,
    num_classes: int = 10,
) -> nn.Sequential:
    """Three 5 x 5 convolutions (each followed by the activation and 2 x 2 max pooling) and one
    fully connected layer, with no normalisation or dropout: (N, in_channels, side, side) ->
    (N, num_classes). The layout of Krizhevsky's cuda-convnet example network for CIFAR-10; the
    2012 paper does not give its figure 1 network's."""
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    channels = tuple(channels) if isinstance(channels, (list, tuple)) else (channels,)
    if len(channels) != 3 or not all(_whole(c) and c >= 1 for c in channels):
        raise ValueError(f"channels must be three positive whole numbers; got {channels}")
    if not (_whole(side) and side >= 8 and side % 8 == 0):
        raise ValueError(
            f"side must be a positive multiple of 8 (three 2 x 2 poolings); got {side!r}"
        )
    if not (_whole(in_channels) and in_channels >= 1 and _whole(num_classes) and num_classes >= 2):
        raise ValueError(
            f"need in_channels >= 1 and num_classes >= 2; got {in_channels!r} and {num_classes!r}"
        )
    layers: list[nn.Module] = []
    previous = in_channels
    for width in channels:
        layers += [
            nn.Conv2d(previous, width, 5, padding=2),
            ACTIVATIONS[activation](),
            nn.MaxPool2d(2),
        ]
        previous = width
    layers += [nn.Flatten(), nn.Linear(previous * (side // 8) ** 2, num_classes)]
    return nn.Sequential(*layers)


def paper_initialisation(model: nn.Module, std: float = 0.01) -> nn.Module:
    """Every convolution's and linear layer's weights drawn from N(0, std^2), biases zero (the
    AlexNet paper's section 5 draws N(0, 0.01^2); it gives some layers biases of 1). In place."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(module.weight, 0.0, std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


#: AlexNet's eight weight layers, and those the paper gives a bias of 1 (its section 5)
ALEXNET_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")


def paper_tanh_alexnet(seed: int = 0) -> nn.Module:
    """The 227 x 227 AlexNet (no LRN) with tanh units, set up as the paper's section 5 says:
    weights from N(0, 0.01^2), biases of 1 in conv2, conv4, conv5, fc6 and fc7, 0 elsewhere."""
    from . import models

    torch.manual_seed(seed)
    net = models.AlexNet(activation="tanh", lrn=False)
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for name, layer in zip(ALEXNET_LAYERS, layers, strict=True):
        nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.constant_(layer.bias, 1.0 if name in BIAS_ONE else 0.0)
    return net


@torch.no_grad()
def tanh_slopes(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Mean slope 1 - tanh(z)^2 over the units of each tanh layer of ``model`` (in eval mode)
    for images x (N, 3, H, W), in layer order: 1 passes the gradient whole, 0 blocks it."""
    inputs = []
    hooks = [
        m.register_forward_hook(lambda module, args, out: inputs.append(args[0]))
        for m in model.modules()
        if isinstance(m, nn.Tanh)
    ]
    try:
        model.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    return [(1 - z.float().tanh() ** 2).mean().item() for z in inputs]


@dataclass
class Run:
    """One training run: ``errors`` is the training error of each step's batch (before its
    update); ``steps`` the first step at which the mean over the last ``window`` batches is at
    most the target, or None if it never was within the run's step limit; ``diverged``: the loss
    became NaN or infinite at step ``len(errors) + 1``."""

    lr: float
    seed: int
    steps: int | None
    errors: list[float]
    diverged: bool = False


def steps_to_error(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lr: float,
    target: float = 0.25,
    max_steps: int = 1000,
    batch_size: int = 128,
    window: int = 8,
    momentum: float = 0.9,
    seed: int = 0,
) -> Run:
    """Train ``model`` on (x, y) with plain SGD with momentum and cross-entropy until the running
    training error (mean over the last ``window`` batches) is at most ``target``, or for
    ``max_steps``. x: (N, C, H, W) on the model's device, y: (N,). A run whose loss becomes
    NaN or infinite has diverged and stops there, never reaching the target."""
    if not 0 < target < 1:
        raise ValueError(f"target is a training error between 0 and 1; got {target}")
    if not (_whole(window) and _whole(max_steps) and 1 <= window <= max_steps):
        raise ValueError(
            f"need whole numbers 1 <= window <= max_steps; got window {window!r}, "
            f"max_steps {max_steps!r}"
        )
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number; got {lr!r}")
    if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        raise ValueError(f"momentum must lie in [0, 1); got {momentum!r}")
    if not _whole(batch_size) or not _whole(seed):
        raise ValueError(f"batch_size and seed must be whole numbers; got {batch_size!r}, {seed!r}")
    loader = DeviceLoader(x, y, batch_size=batch_size, drop_last=True, seed=seed)
    if len(loader) == 0:
        raise ValueError(
            f"{len(y)} training images make no batch of {batch_size}: lower batch_size"
        )
    if not loader.x.is_floating_point() or not torch.isfinite(loader.x).all():
        raise ValueError(
            "x must hold finite floating-point pixels (convert uint8 images with "
            "x.float() / 255 and remove NaN or infinite values)"
        )
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ValueError("the model has no trainable parameters: build a fresh one for each run")
    train.check_batch(model, loader.x[:1], loader.y)
    optimizer = torch.optim.SGD(parameters, lr=lr, momentum=momentum)
    errors: list[float] = []
    model.train()
    while len(errors) < max_steps:
        for xb, yb in loader:
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if not torch.isfinite(loss):
                return Run(lr, seed, None, errors, diverged=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            errors.append((logits.argmax(1) != yb).float().mean().item())
            if len(errors) >= window and sum(errors[-window:]) / window <= target:
                return Run(lr, seed, len(errors), errors)
            if len(errors) == max_steps:
                break
    return Run(lr, seed, None, errors)


@dataclass
class Race:
    """The outcome of :func:`race`: per activation, the grid runs (one seed, every learning
    rate), the chosen learning rate and the measured runs (fresh seeds); ``window`` is the
    running-error window the runs used."""

    target: float
    max_steps: int
    grid: dict[str, list[Run]]
    chosen_lr: dict[str, float]
    runs: dict[str, list[Run]]
    window: int = 8

    def _pair(self, slow: str, fast: str) -> list[tuple[Run, Run]]:
        for name in (slow, fast):
            if name not in self.runs:
                raise ValueError(f"this race has no {name!r} runs; it raced {list(self.runs)}")
        pairs = list(zip(self.runs[slow], self.runs[fast], strict=True))
        if not pairs:
            raise ValueError("this race has no measured runs")
        return pairs

    def steps(self, activation: str) -> list[int | None]:
        """Steps to the target per measured seed (None: not within max_steps)."""
        if activation not in self.runs:
            raise ValueError(f"this race has no {activation!r} runs; it raced {list(self.runs)}")
        return [run.steps for run in self.runs[activation]]

    def ratios(self, slow: str = "tanh", fast: str = "relu") -> list[float]:
        """Per seed, steps(slow) / steps(fast); a run that never reached the target counts as
        max_steps, which makes its ratio a bound (see :meth:`summary`); NaN where neither did."""
        return [
            math.nan
            if a.steps is None and b.steps is None
            else (a.steps or self.max_steps) / (b.steps or self.max_steps)
            for a, b in self._pair(slow, fast)
        ]

    def verdict(self, slow: str = "tanh", fast: str = "relu") -> str:
        """Which activation reached the target first with every seed, or that the seeds disagree."""

        def first(a: Run, b: Run) -> bool:  # a reached the target before b did (or b never did)
            return a.steps is not None and (b.steps is None or a.steps < b.steps)

        pairs = self._pair(slow, fast)
        if all(first(b, a) for a, b in pairs):
            return f"{fast} first with every seed"
        if all(first(a, b) for a, b in pairs):
            return f"{slow} first with every seed"
        return "no activation first with every seed"

    def median_ratio(self, slow: str = "tanh", fast: str = "relu") -> str:
        """The median per-seed ratio (the upper one for an even count) as text, marked as a bound
        where runs that missed the target could move it: "0.77", ">= 1.4" (a ``slow`` run that
        missed ranks at or below the median), "<= 0.5" (a ``fast`` run that missed ranks at or
        above it), or "unknown" (both, or both missed in the median seed)."""
        pairs = self._pair(slow, fast)
        ratios = [math.inf if math.isnan(r) else r for r in self.ratios(slow, fast)]
        order = sorted(range(len(ratios)), key=ratios.__getitem__)
        middle = len(order) // 2
        k = order[middle]
        low = any(pairs[j][0].steps is None for j in order[: middle + 1])
        high = any(pairs[j][1].steps is None for j in order[middle:])
        if (low and high) or math.isinf(ratios[k]):
            return "unknown (runs that missed the target could move it either way)"
        return f"{'>= ' if low else '<= ' if high else ''}{ratios[k]:.2g}"

    def summary(self, slow: str = "tanh", fast: str = "relu") -> str:
        """One line per activation and one for the ratio: median and range over seeds."""
        lines = []
        for activation, runs in self.runs.items():
            shown = ", ".join(
                str(r.steps)
                if r.steps is not None
                else f"diverged at {len(r.errors) + 1}"
                if r.diverged
                else f">{self.max_steps}"
                for r in runs
            )
            tried = sorted(run.lr for run in self.grid.get(activation, []))
            edge = (
                " (the grid's edge: a learning rate beyond it might be faster)"
                if len(tried) > 1 and self.chosen_lr[activation] in (tried[0], tried[-1])
                else ""
            )
            lines.append(
                f"{activation:5s} lr {self.chosen_lr[activation]:g}{edge}: steps to "
                f"{self.target:.0%} training error per seed: {shown}"
            )
        known = [r for r in self.ratios(slow, fast) if not math.isnan(r)]
        if not known:
            lines.append(
                f"{slow} / {fast} steps: unknown, neither reached the target with any seed"
            )
            return "\n".join(lines)
        missed = [a for a in (slow, fast) if None in self.steps(a)]
        lines.append(
            f"{slow} / {fast} steps: median {statistics.median(known):.2f}, range "
            f"{min(known):.2f} to {max(known):.2f} over {len(known)} seeds"
            + (
                f" (bounds: some {' and '.join(missed)} runs did not reach the target in "
                f"{self.max_steps} steps and count as {self.max_steps}; seeds where neither "
                "did are left out)"
                if missed
                else ""
            )
        )
        return "\n".join(lines)


def race(
    make_model: Callable[[str], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    lrs: Sequence[float],
    seeds: Sequence[int] = (1, 2, 3),
    grid_seed: int = 0,
    activations: Sequence[str] = ("relu", "tanh"),
    **options,
) -> Race:
    """For each activation: run :func:`steps_to_error` with ``grid_seed`` at every learning rate
    in ``lrs`` (largest first; once one reaches the target, the others stop at its step count, as
    they can no longer win), keep the one reaching the target in the fewest steps (the largest on
    a tie; the one with the lowest final running error if none reaches it), then measure with each of
    ``seeds``. ``make_model(activation)`` builds a fresh network; the seed fixes its weights and
    the batch order. ``options`` go to :func:`steps_to_error`."""
    lrs, seeds = [float(lr) for lr in lrs], list(seeds)
    if not seeds or not lrs or isinstance(activations, str) or not activations:
        raise ValueError(
            "race needs sequences of at least one seed, one learning rate and one activation "
            f"name; got seeds {seeds}, lrs {lrs}, activations {activations!r}"
        )
    if len(set(seeds)) != len(seeds) or grid_seed in seeds:
        raise ValueError(
            f"the seeds {seeds} and grid_seed {grid_seed} must all differ: a repeated seed "
            "repeats a run and makes the spread look smaller than it is"
        )
    max_steps = options.get("max_steps", 1000)
    window = options.get("window", 8)

    def run(activation: str, lr: float, seed: int, limit: int = max_steps) -> Run:
        torch.manual_seed(seed)
        model = make_model(activation)
        if not isinstance(model, nn.Module):
            raise ValueError(f"make_model({activation!r}) must return an nn.Module; got {model!r}")
        model = model.to(torch.as_tensor(x).device)
        return steps_to_error(model, x, y, lr=lr, seed=seed, **{**options, "max_steps": limit})

    def cost(r: Run) -> tuple:
        # reached first; then runs that did not diverge, by their final running error
        final = sum(r.errors[-window:]) / max(1, len(r.errors[-window:])) if r.errors else 1.0
        return (r.steps is None, r.diverged, r.steps or max_steps, final, -r.lr)

    grid, chosen, runs = {}, {}, {}
    for activation in activations:
        grid[activation] = []
        for lr in sorted(lrs, reverse=True):
            best = min(
                (r.steps for r in grid[activation] if r.steps is not None), default=max_steps
            )
            grid[activation].append(run(activation, lr, grid_seed, max(window, best)))
        chosen[activation] = min(grid[activation], key=cost).lr
        runs[activation] = [run(activation, chosen[activation], seed) for seed in seeds]
    return Race(
        target=options.get("target", 0.25),
        max_steps=max_steps,
        grid=grid,
        chosen_lr=chosen,
        runs=runs,
        window=window,
    )
