"""Invariance measured: transformations of image batches, features by layer name, and how much
a network's features, true-class probability and accuracy change under a transformation
(the measure of Zeiler and Fergus 2014, section 4.3 and Fig. 5); blurred subsampling (Zhang 2019).

Every function takes and returns batches (N, C, H, W) on any device.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SHIFT_MODES = ("zeros", "circular")


def check_images(x, name: str = "x") -> torch.Tensor:
    """``x`` itself when it is a float batch (N, C, H, W); otherwise the error that says how to fix it."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor (N, C, H, W); got {type(x).__name__}")
    if x.ndim != 4:
        hint = " (one image: add the batch axis with x[None])" if x.ndim == 3 else ""
        raise ValueError(f"{name} must be a batch (N, C, H, W); got shape {tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must hold floats; got {x.dtype} (convert with x.float() / 255)")
    return x


def shift(x: torch.Tensor, dx: int, dy: int = 0, *, mode: str = "zeros") -> torch.Tensor:
    """``x`` (N, C, H, W) moved ``dx`` pixels right and ``dy`` down: what leaves one side comes
    back on the other (``mode="circular"``) or the uncovered strip is zero (``"zeros"``)."""
    check_images(x)
    height, width = x.shape[-2:]
    for name, value, side in (("dx", dx, width), ("dy", dy, height)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"{name} must be a whole number of pixels; got {value!r}")
        if abs(value) >= side:
            raise ValueError(f"|{name}| must be below the image's size {side}; got {value}")
    if mode not in SHIFT_MODES:
        raise ValueError(f"mode must be one of {SHIFT_MODES}; got {mode!r}")
    if mode == "circular":
        return torch.roll(x, shifts=(int(dy), int(dx)), dims=(-2, -1))
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)))
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top : top + height, left : left + width]


def affine(x: torch.Tensor, *, angle: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    """``x`` (N, C, H, W) turned by ``angle`` degrees (counter-clockwise as displayed: 90 is
    ``torch.rot90(x, 1, (2, 3))``) and zoomed by ``scale`` about the centre, bilinear; what comes
    from outside repeats the border pixels."""
    check_images(x)
    if not (isinstance(angle, int | float) and -360 <= angle <= 360):
        raise ValueError(f"angle must be a number of degrees in [-360, 360]; got {angle!r}")
    if not (isinstance(scale, int | float) and 0.1 <= scale <= 10):
        raise ValueError(f"scale must be a zoom factor in [0.1, 10]; got {scale!r}")
    turn = torch.tensor(np.deg2rad(angle), dtype=x.dtype)
    cos, sin = torch.cos(turn) / scale, torch.sin(turn) / scale
    # output pixel -> where to read it in the input (the inverse map), in [-1, 1] coordinates
    theta = torch.stack([torch.stack([cos, -sin, cos * 0]), torch.stack([sin, cos, cos * 0])])
    grid = F.affine_grid(
        theta.expand(len(x), 2, 3).to(x.device), list(x.shape), align_corners=False
    )
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def layer_names(model: nn.Module) -> list[str]:
    """Names of ``model``'s submodules that :func:`layer_features` can read, in order."""
    return [name for name, _ in model.named_modules() if name]


def layer_features(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict:
    """{layer name: its output (N, ...)} for ``x``, read by forward hooks, plus ``"logits"``."""
    check_images(x)
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules or not name]
    if missing:
        raise KeyError(
            f"{model.__class__.__name__} has no layer {', '.join(map(repr, missing))}; "
            f"its layers are: {', '.join(layer_names(model))}"
        )
    found: dict[str, torch.Tensor] = {}
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: found.update({name: out})
        )
        for name in layers
    ]
    try:
        with torch.no_grad():
            found["logits"] = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return found


def relative_change(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """‖a − b‖ / ‖a‖ per example (N,), over all other axes (0 where both are zero)."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    return (a - b).norm(dim=1) / a.norm(dim=1).clamp_min(1e-12)


@dataclass
class Curves:
    """Per amount of transformation: mean relative feature change per layer, mean probability
    of the true class and accuracy (each a list, in the order of ``amounts``)."""

    amounts: list
    change: dict[str, list[float]] = field(default_factory=dict)
    probability: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


def curves(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    transform: Callable[[torch.Tensor, object], torch.Tensor],
    amounts: Sequence,
    layers: Sequence[str],
    *,
    batch_size: int = 500,
) -> Curves:
    """Zeiler and Fergus's measurements of ``model`` on ``x`` (N, C, H, W) with labels ``y`` (N,)
    under ``transform(x, amount)`` for each amount: φ_l(x) is compared with φ_l(Tx) per layer."""
    model.eval()
    device = next(model.parameters()).device
    result = Curves(list(amounts), {name: [] for name in layers})
    chunks = [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    originals = [layer_features(model, xb.to(device), layers) for xb, _ in chunks]
    for amount in amounts:
        change = {name: [] for name in layers}
        probability, correct = [], []
        for (xb, yb), original in zip(chunks, originals, strict=True):
            moved = layer_features(model, transform(xb, amount).to(device), layers)
            for name in layers:
                change[name].append(relative_change(original[name], moved[name]))
            p = moved["logits"].float().softmax(1).cpu()
            probability.append(p[torch.arange(len(yb)), yb])
            correct.append(p.argmax(1) == yb)
        for name in layers:
            result.change[name].append(torch.cat(change[name]).mean().item())
        result.probability.append(torch.cat(probability).mean().item())
        result.accuracy.append(torch.cat(correct).float().mean().item())
    return result


def binomial_kernel(size: int = 3) -> torch.Tensor:
    """The normalised 2D binomial blur (size, size): [1, 2, 1] ⊗ [1, 2, 1] / 16 for size 3."""
    row = torch.tensor([float(math.comb(size - 1, k)) for k in range(size)])
    kernel = torch.outer(row, row)
    return kernel / kernel.sum()


class BlurPool(nn.Module):
    """Blur, then keep every ``stride``-th pixel (Zhang 2019, "Making convolutional networks
    shift-invariant again"): a depthwise binomial filter with reflect padding, (N, C, H, W) ->
    (N, C, ⌈H/stride⌉, ⌈W/stride⌉). The blur removes the frequencies that subsampling would alias."""

    def __init__(self, channels: int, *, stride: int = 2, size: int = 3) -> None:
        super().__init__()
        self.channels, self.stride, self.pad = channels, stride, (size - 1) // 2
        kernel = binomial_kernel(size).expand(channels, 1, size, size).contiguous()
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return F.conv2d(x, self.kernel.to(x.dtype), stride=self.stride, groups=self.channels)


def max_blur_pool(channels: int) -> nn.Module:
    """Zhang's replacement for ``nn.MaxPool2d(2)``: the max over 2x2 windows at every position
    (stride 1), then :class:`BlurPool` with stride 2."""
    return nn.Sequential(nn.MaxPool2d(2, stride=1), BlurPool(channels, stride=2))


def photos() -> list[torch.Tensor]:
    """Three real photos that ship with our dependencies, as uint8 tensors (3, H, W): Grace
    Hopper (matplotlib), a Chinese temple and a flower (scikit-learn)."""
    import matplotlib.cbook
    import matplotlib.image
    from sklearn.datasets import load_sample_images

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        hopper = matplotlib.image.imread(handle, format="jpg")
    images = [hopper, *load_sample_images().images]
    return [torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1) for image in images]


def photo_curves(model: nn.Module, transforms, *, kind: str, amounts: Sequence) -> Curves:
    """:func:`curves` of an ImageNet ``model`` on :func:`photos` prepared by the weights'
    ``transforms``, against the class it predicts for each untransformed photo (no label is
    known): ``kind`` "shift" (circular, pixels), "scale" (zoom factor) or "rotation" (degrees)."""
    moves = {
        "shift": lambda x, a: shift(x, int(a), 0, mode="circular"),
        "scale": lambda x, a: affine(x, scale=float(a)),
        "rotation": lambda x, a: affine(x, angle=float(a)),
    }
    if kind not in moves:
        raise ValueError(f"kind must be one of {', '.join(moves)}; got {kind!r}")
    device = next(model.parameters()).device
    x = torch.stack([transforms(photo) for photo in photos()]).to(device)
    with torch.no_grad():
        predicted = model.eval()(x).argmax(1).cpu()
    first = next(name for name, m in model.named_modules() if isinstance(m, nn.Conv2d))
    return curves(model, x, predicted, moves[kind], amounts, [first, _last_features(model)])


def _last_features(model: nn.Module) -> str:
    """The name of the module just before the classifier (the pooled features)."""
    names = [name for name, _ in model.named_children()]
    return names[-2]
