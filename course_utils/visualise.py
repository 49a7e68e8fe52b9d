"""What a neuron responds to, found by optimisation (activation maximisation): gradient ascent
on an input image for a unit's activation, naive (pixels) or regularised (random jitter, scale
and rotation each step, and a Fourier parameterisation that gives low frequencies larger steps),
after Olah, Mordvintsev and Schubert (2017, "Feature visualization") and Mordvintsev et al.
(2018, "Differentiable image parameterizations"). Images are (1, 3, H, W) in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_utils import invariance

Objective = Callable[[torch.Tensor], torch.Tensor]


def channel_objective(model: nn.Module, layer: str, channel: int) -> Objective:
    """image (N, 3, H, W) -> the mean activation of ``channel`` of ``layer``, summed over N."""
    if isinstance(channel, bool) or not isinstance(channel, int):
        raise TypeError(f"channel must be a whole number; got {channel!r}")
    unit_layer = invariance.layer(model, layer)
    found: dict[str, torch.Tensor] = {}

    def objective(image: torch.Tensor) -> torch.Tensor:
        invariance.check_images(image, "image")
        handle = unit_layer.register_forward_hook(lambda _m, _i, out: found.update(out=out))
        try:
            model(image)
        finally:
            handle.remove()
        out = found.pop("out")
        if not 0 <= channel < out.shape[1]:
            raise IndexError(f"{layer} has {out.shape[1]} channels; got channel {channel}")
        return out[:, channel].reshape(len(out), -1).mean(1).sum()

    return objective


def mix(first: Objective, second: Objective, weight: float) -> Objective:
    """The objective ``weight * first + (1 - weight) * second`` (weight 0.5 twice: a_i + a_j)."""
    weight = invariance.number(weight, "weight", 0.0, 1.0)
    return lambda image: weight * first(image) + (1 - weight) * second(image)


class Parameterisation(nn.Module):
    """An image (1, 3, size, size) in [0, 1] as a sigmoid of trainable numbers: the pixels
    themselves (``"pixel"``), or a spectrum whose coefficients are scaled by 1 / frequency
    (``"fourier"``), so that a gradient step changes low frequencies more than high ones."""

    def __init__(self, size: int, kind: str = "pixel", *, seed: int = 0) -> None:
        super().__init__()
        if kind not in ("pixel", "fourier"):
            raise ValueError(f'kind must be "pixel" or "fourier"; got {kind!r}')
        g = torch.Generator().manual_seed(seed)
        self.kind, self.size = kind, size
        if kind == "pixel":
            self.values = nn.Parameter(0.01 * torch.randn(1, 3, size, size, generator=g))
        else:
            fy = torch.fft.fftfreq(size)[:, None]
            fx = torch.fft.rfftfreq(size)[None, :]
            scale = 1.0 / torch.sqrt(fy**2 + fx**2).clamp_min(1.0 / size)
            self.register_buffer("scale", scale * size / scale.max(), persistent=False)
            shape = (1, 3, size, size // 2 + 1, 2)
            self.values = nn.Parameter(0.01 * torch.randn(*shape, generator=g))

    def forward(self) -> torch.Tensor:
        if self.kind == "pixel":
            return torch.sigmoid(self.values)
        spectrum = torch.view_as_complex(self.values) * self.scale
        return torch.sigmoid(torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho"))


def jitter_scale_rotate(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``image`` moved up to 2 pixels, zoomed by 0.9 to 1.1 and turned by up to 10 degrees, at
    random: the transformation robustness of Olah et al. (2017)."""
    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=generator))
    zoom, turn = (torch.rand(2, generator=generator) * 2 - 1).tolist()
    moved = invariance.shift(image, dx, dy, mode="circular")
    return invariance.affine(moved, angle=10.0 * turn, scale=1.0 + 0.1 * zoom)


def maximise(
    objective: Objective,
    *,
    size: int = 32,
    steps: int = 200,
    lr: float = 0.05,
    kind: str = "pixel",
    robust: bool = False,
    seed: int = 0,
    device=None,
) -> torch.Tensor:
    """The image (1, 3, size, size) in [0, 1] that ``steps`` Adam steps of gradient ascent on
    ``objective`` reach from a small random start (``robust``: each step sees the image randomly
    jittered, zoomed and turned)."""
    for name, value, low in (("size", size, 8), ("steps", steps, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be a whole number of at least {low}; got {value!r}")
    parameters = Parameterisation(size, kind, seed=seed).to(device or "cpu")
    optimizer = torch.optim.Adam(parameters.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        image = parameters()
        if robust:
            image = jitter_scale_rotate(image, generator)
        value = objective(image)
        if not (isinstance(value, torch.Tensor) and value.numel() == 1 and value.requires_grad):
            raise TypeError("objective(image) must return a one-number tensor computed from image")
        loss = -value.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return parameters().detach()


def high_frequency_share(image: torch.Tensor) -> float:
    """The share of an image's power (its mean removed) at spatial frequencies above half the
    highest one along either axis: near 0 for smooth images, about 0.72 for white noise on 32 × 32
    pixels (1 - (17/32)², the share of such frequencies). ``image`` (N, C, H, W)."""
    if len(invariance.check_images(image, "image")) == 0:
        raise ValueError("image holds no images")
    centred = image - image.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(centred.double()).abs() ** 2
    fy = torch.fft.fftfreq(image.shape[-2], dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(image.shape[-1], dtype=torch.float64)[None, :]
    high = torch.maximum(fy.abs(), fx.abs()) > 0.25  # 0.5 cycles per pixel is the highest
    return (power[..., high].sum() / power.sum().clamp_min(1e-30)).item()


def top_examples(model: nn.Module, layer: str, channel: int, x: torch.Tensor, k: int = 6):
    """Indices (k,) of the images in ``x`` (N, 3, H, W) on which ``channel`` of ``layer`` has the
    largest mean activation, and those activations (k,)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(x):
        raise ValueError(f"k must be a whole number from 1 to the {len(x)} images in x; got {k!r}")
    found = invariance.layer_features(model, x, [layer])[layer]
    if not 0 <= channel < found.shape[1]:
        raise IndexError(f"{layer} has {found.shape[1]} channels; got channel {channel}")
    values = found[:, channel].reshape(len(found), -1).mean(1)
    best = values.topk(k)
    return best.indices, best.values
