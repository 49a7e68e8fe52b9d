"""Invariance measured: transformations of image batches, features by layer name, and how much
a network's features, true-class probability and accuracy change under a transformation
(after Zeiler and Fergus 2014, section 4, "Feature invariance", Fig. 5); blurred subsampling
(Zhang 2019).

Every function takes and returns batches (N, C, H, W) on any device.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.env import read_in_fast_layout

SHIFT_MODES = ("zeros", "circular")


def number(value, name: str, low: float, high: float) -> float:
    """``value`` (a Python, NumPy or 0-d torch real number, not a bool) as a float within
    [low, high]; otherwise the error that names ``name`` and the range."""
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [{low:g}, {high:g}]; got {value!r}")
    if not low <= float(value) <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}]; got {float(value):g}")
    return float(value)


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
    if len(x) == 0:
        raise ValueError("x holds no images")
    angle, scale = number(angle, "angle (degrees)", -360, 360), number(scale, "scale", 0.1, 10)
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


def layer(model: nn.Module, name: str) -> nn.Module:
    """``model``'s submodule called ``name``; KeyError listing the names it has otherwise."""
    module = dict(model.named_modules()).get(name) if name else None
    if module is None:
        raise KeyError(
            f"{model.__class__.__name__} has no layer {name!r}; its layers are: "
            f"{', '.join(layer_names(model))}"
        )
    return module


def layer_features(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict:
    """{layer name: its output (N, ...)} for ``x``, read by forward hooks, plus ``"logits"``."""
    check_images(x)
    if isinstance(layers, str):
        raise TypeError(
            f"layers must be a list of names, e.g. [{layers!r}]; got the string {layers!r}"
        )
    modules = {name: layer(model, name) for name in layers}
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.dtype != x.dtype:
        raise TypeError(f"x is {x.dtype} but the network's weights are {parameter.dtype}: "
                        f"convert with x.to({parameter.dtype})")  # fmt: skip
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
    """‖a − b‖ / ‖a‖ per example (N,), over all other axes; NaN where a is all zeros."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        raise TypeError("a and b must be torch tensors (N, ...) of the same shape")
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(
            f"a and b must have one shape (N, ...); got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if not (a.is_floating_point() and b.is_floating_point() and a.element_size() >= 4):
        a, b = a.double(), b.double()  # whole numbers and half precision: subtract in float64
    rest = tuple(range(1, a.ndim))  # read in the inputs' memory layout; the norms in float64
    size = torch.linalg.vector_norm(a, dim=rest, dtype=torch.float64)
    change = torch.linalg.vector_norm(a - b, dim=rest, dtype=torch.float64)
    return change / torch.where(size > 0, size, torch.nan)


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
    under ``transform(x, amount)`` (called with the whole batch) for each amount: φ_l(x) is
    compared with φ_l(Tx) per layer; the network sees ``batch_size`` images at a time."""
    model.eval()
    parameter = next(model.parameters(), None)
    if parameter is None:
        raise ValueError("the model has no parameters: curves measures a trained network")
    device = parameter.device
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive whole number; got {batch_size!r}")
    result = Curves(list(amounts), {name: [] for name in layers})
    layout = None  # channels-last on a CPU until the network needs the default layout

    def read(images, memory_format):  # batch_size images at a time through the network
        parts = [
            layer_features(
                model, images[i : i + batch_size].to(device, memory_format=memory_format), layers
            )
            for i in range(0, len(images), batch_size)
        ]
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}

    def features(images):
        nonlocal layout
        found, layout = read_in_fast_layout(lambda fmt: read(images, fmt), device, layout)
        return found

    if len(check_images(x)) == 0:
        raise ValueError("x holds no images")
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point() or len(y) != len(x):
        raise ValueError(f"y must hold one whole-number class per image ({len(x)},); got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")  # fmt: skip
    original = features(x)
    for amount in amounts:
        moved_x = check_images(transform(x, amount), "transform(x, amount)")
        if moved_x.shape[0] != len(x):
            raise ValueError(
                f"transform(x, {amount!r}) returned {len(moved_x)} images for {len(x)}"
            )
        moved = features(moved_x)
        for name in layers:
            result.change[name].append(relative_change(original[name], moved[name]).mean().item())
        p = moved["logits"].float().softmax(1).cpu()
        if y.min() < 0 or y.max() >= p.shape[1]:
            raise ValueError(f"labels must be in 0..{p.shape[1] - 1}; got {y.min()}..{y.max()}")
        result.probability.append(p[torch.arange(len(y)), y].mean().item())
        result.accuracy.append((p.argmax(1) == y).float().mean().item())
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
        for name, value in (("channels", channels), ("stride", stride), ("size", size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive whole number; got {value!r}")
        if size % 2 == 0:
            raise ValueError(f"size must be odd so the blur is centred; got {size}")
        self.channels, self.stride, self.pad = channels, stride, (size - 1) // 2
        kernel = binomial_kernel(size).expand(channels, 1, size, size).contiguous()
        self.register_buffer("kernel", kernel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x)
        if x.shape[1] != self.channels:
            raise ValueError(f"this BlurPool blurs {self.channels} channels; x has {x.shape[1]}")
        if min(x.shape[-2:]) <= self.pad:
            raise ValueError(f"images of {tuple(x.shape[-2:])} are too small to pad by reflection")
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
        "shift": lambda x, a: shift(x, a, 0, mode="circular"),
        "scale": lambda x, a: affine(x, scale=float(a)),
        "rotation": lambda x, a: affine(x, angle=float(a)),
    }
    if kind not in moves:
        raise ValueError(f"kind must be one of {', '.join(moves)}; got {kind!r}")
    device = next(model.parameters()).device
    prepared = [transforms(photo) for photo in photos()]
    if len({tuple(p.shape) for p in prepared}) != 1 or not prepared[0].is_floating_point():
        raise ValueError("transforms must make float images (3, H, W) of one size from uint8 "
                         "photos, as a torchvision weights' transforms() does")  # fmt: skip
    x = torch.stack(prepared).to(device)
    with torch.no_grad():
        predicted = model.eval()(x).argmax(1).cpu()
    first = next(name for name, m in model.named_modules() if isinstance(m, nn.Conv2d))
    return curves(model, x, predicted, moves[kind], amounts, [first, _last_features(model)])


def _last_features(model: nn.Module) -> str:
    """The name of the module just before the classifier (the pooled features)."""
    names = [name for name, _ in model.named_children()]
    return names[-2]


def circular_padding(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose convolutions pad circularly instead of with zeros: the image
    becomes a torus, so no border tells the network where it is (same weights)."""
    import copy

    twin = copy.deepcopy(model)
    for module in twin.modules():
        if isinstance(module, nn.Conv2d):
            module.padding_mode = "circular"
    return twin
