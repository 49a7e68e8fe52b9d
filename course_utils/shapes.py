"""Procedurally drawn colour images, the offline stand-ins of :mod:`course_utils.datasets`:
"shapes10" (for CIFAR-10) and "newshapes10" (ten other shapes, the offline transfer target).

Each image is one class's spatial pattern drawn with a random colour, centre, size and angle
over a random background with smooth noise; the same seed always gives the same images.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F

SHAPES10_CLASSES = (
    "disk",
    "square",
    "triangle",
    "ring",
    "cross",
    "horizontal bars",
    "vertical bars",
    "checkerboard",
    "diagonal stripes",
    "two dots",
)
NEWSHAPES10_CLASSES = (
    "half disk",
    "ellipse",
    "diamond",
    "frame",
    "diagonal cross",
    "three dots",
    "concentric rings",
    "T",
    "crescent",
    "Z",
)


def _wave(t: torch.Tensor) -> torch.Tensor:
    """A square wave of period 1: True on the first half of each period (negative t too)."""
    return torch.remainder(t, 1.0) < 0.5


def _shape_masks(cy, cx, r, period, phase, yy, xx) -> list[torch.Tensor]:
    """The ten shapes10 classes as boolean masks (n, H, W), in :data:`SHAPES10_CLASSES` order."""
    dy, dx = yy - cy, xx - cx
    dist = torch.sqrt(dy**2 + dx**2)
    patch = (dy.abs() < r) & (dx.abs() < r)  # textures fill a square patch at a random place
    return [
        dist < r,  # disk
        (dy.abs() < r * 0.85) & (dx.abs() < r * 0.85),  # square
        (dy < r * 0.7) & (dy > -r * 0.9 + 1.6 * dx.abs()),  # triangle
        (dist < r) & (dist > r * 0.55),  # ring
        ((dy.abs() < r * 0.25) & (dx.abs() < r))
        | ((dx.abs() < r * 0.25) & (dy.abs() < r)),  # cross
        patch & _wave(yy / period + phase),  # horizontal bars
        patch & _wave(xx / period + phase),  # vertical bars
        patch & (_wave(yy / period + phase) ^ _wave(xx / period + phase)),  # checkerboard
        patch & _wave((yy + xx) / (1.4 * period) + phase),  # diagonal stripes
        ((dy**2 + (dx - r) ** 2).sqrt() < r * 0.4)
        | ((dy**2 + (dx + r) ** 2).sqrt() < r * 0.4),  # two dots
    ]


def _new_shape_masks(cy, cx, r, period, phase, yy, xx) -> list[torch.Tensor]:
    """Ten classes shapes10 does not have, as masks (n, H, W), in :data:`NEWSHAPES10_CLASSES` order."""
    dy, dx = yy - cy, xx - cx
    dist = torch.sqrt(dy**2 + dx**2)
    arm = r * 0.22
    return [
        (dist < r) & (dy > 0),  # half disk
        (dy / (0.5 * r)) ** 2 + (dx / r) ** 2 < 1,  # ellipse
        dy.abs() + dx.abs() < r,  # diamond
        (dy.abs() < r) & (dx.abs() < r) & ~((dy.abs() < r * 0.6) & (dx.abs() < r * 0.6)),  # frame
        (((dy - dx).abs() < arm) | ((dy + dx).abs() < arm)) & (dist < r),  # diagonal cross
        (((dy + r * 0.5) ** 2 + dx**2).sqrt() < r * 0.35)
        | (((dy - r * 0.45) ** 2 + (dx - r * 0.6) ** 2).sqrt() < r * 0.35)
        | (((dy - r * 0.45) ** 2 + (dx + r * 0.6) ** 2).sqrt() < r * 0.35),  # three dots
        (dist < r) & _wave(dist / period + phase),  # concentric rings
        ((dy + r * 0.8).abs() < arm) & (dx.abs() < r)
        | ((dx.abs() < arm) & (dy.abs() < r * 0.8)),  # T
        (dist < r) & (((dy**2 + (dx - r * 0.5) ** 2).sqrt()) > r * 0.8),  # crescent
        (((dy.abs() - r * 0.8).abs() < arm) & (dx.abs() < r))
        | (((dy + dx).abs() < arm * 1.4) & (dy.abs() < r * 0.8)),  # Z
    ]


def _draw(
    masks_fn, n: int, seed: int, size: int, radius=(0.3, 0.6), angle=(0.0, 0.0), centre=0.35
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (n, 3, size, size) of the classes ``masks_fn`` draws, and labels (n,), balanced;
    ``radius``, ``angle`` (degrees) and ``centre`` (largest offset) as in :func:`shapes10`."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    y = y[torch.randperm(n, generator=g)]
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1  # [-1, 1]
    yy, xx = coords.view(1, -1, 1), coords.view(1, 1, -1)

    def u(lo, hi):
        return torch.rand(n, 1, 1, generator=g) * (hi - lo) + lo

    cy, cx, r = u(-0.35, 0.35), u(-0.35, 0.35), u(0.3, 0.6)
    period, phase = u(0.12, 0.25), u(0, 1)
    turns = torch.Generator().manual_seed(seed)  # its own stream: other draws stay the same
    turn = torch.deg2rad(torch.rand(n, 1, 1, generator=turns) * (angle[1] - angle[0]) + angle[0])
    scaled = radius[0] + (r - 0.3) / 0.3 * (radius[1] - radius[0])  # the same draw, new range
    period, r = period * scaled / r, scaled  # textures scale with their shape
    cy, cx = cy * centre / 0.35, cx * centre / 0.35
    # the shape turned about its own centre: the masks sampled on turned coordinates
    cos, sin = torch.cos(turn), torch.sin(turn)
    ry = cy + cos * (yy - cy) - sin * (xx - cx)
    rx = cx + sin * (yy - cy) + cos * (xx - cx)
    masks = torch.stack(masks_fn(cy, cx, r, period, phase, ry, rx), dim=1)  # (n, 10, H, W)
    mask = masks[torch.arange(n), y].float().unsqueeze(1)  # (n, 1, H, W)
    background = torch.rand(n, 3, 1, 1, generator=g)
    foreground = (background + 0.35 + 0.3 * torch.rand(n, 3, 1, 1, generator=g)) % 1.0
    noise = F.interpolate(
        torch.randn(n, 3, size // 4, size // 4, generator=g),
        size=(size, size),
        mode="bilinear",
        align_corners=False,
    )
    x = (
        mask * foreground
        + (1 - mask) * background
        + 0.08 * noise
        + 0.03 * torch.randn(n, 3, size, size, generator=g)
    )
    return x.clamp(0, 1), y.long()


def shapes10(
    n: int,
    *,
    seed: int = 0,
    size: int = 32,
    radius: tuple[float, float] = (0.3, 0.6),
    angle: tuple[float, float] = (0.0, 0.0),
    centre: float = 0.35,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` procedurally drawn colour images (n, 3, size, size) in [0, 1] and labels (n,), balanced.

    Each class is a spatial pattern (see :data:`SHAPES10_CLASSES`) drawn with a random colour,
    centre (offsets up to ``centre``, in half-widths), size (``radius`` range, in half-widths) and
    angle (``angle`` range in degrees, turned about the shape's centre) and, for the textures,
    which fill a square patch, period and phase, over a random background colour with smooth
    noise; the foreground never has the background's colour. The same ``seed`` with another
    ``radius``, ``angle`` or ``centre`` gives the same images with the shapes moved, scaled or
    turned: the exact transformation, without the borders that transforming pixels leaves.
    """
    if (
        isinstance(n, bool)
        or not isinstance(n, int)
        or n < 1
        or not isinstance(size, int)
        or size < 4
    ):
        raise ValueError(
            f"n must be a whole number ≥ 1 and size one ≥ 4; got n={n!r}, size={size!r}"
        )
    radius, angle = (
        _check_range("radius", radius, 0.02, 1.5),
        _check_range("angle", angle, -360, 360),
    )
    (centre,) = _check_range("centre", (centre, centre), 0.0, 0.9)[:1]
    return _draw(_shape_masks, n, seed, size, radius, angle, centre)


def _check_range(name: str, value, low: float, high: float) -> tuple[float, float]:
    """``value`` as a (from, to) pair of floats with low <= from <= to <= high; else ValueError.
    NumPy numbers and 0-d tensors count as numbers; bools do not."""

    def real(v) -> bool:
        v = v.item() if isinstance(v, torch.Tensor) and v.ndim == 0 else v
        return isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_)

    ok = isinstance(value, tuple | list) and len(value) == 2 and all(real(v) for v in value)
    if ok:
        value = tuple(float(v) for v in value)
    if not (ok and low <= value[0] <= value[1] <= high):
        raise ValueError(
            f"{name} must be a (from, to) pair with {low:g} <= from <= to <= {high:g}; "
            f"got {value!r} (one value v: pass ({name}=(v, v)))"
        )
    return value


def newshapes10(n: int, *, seed: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Like :func:`shapes10` with ten classes it does not have (:data:`NEWSHAPES10_CLASSES`):
    the offline transfer target, (n, 3, size, size) and (n,)."""
    return _draw(_new_shape_masks, n, seed, size)
