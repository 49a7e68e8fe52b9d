"""Public checks for notebook 05 (pooling): ``F.max_pool2d``, autograd, ``gradcheck`` and SciPy."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.checks import Mismatch, call, exercise
from course_utils.checks.compare import as_array, expect_array, expect_gradcheck, float64_tensor

CASES = [
    ((1, 1, 4, 4), 2, 2),
    ((2, 3, 6, 5), 2, 2),
    ((1, 2, 7, 7), 3, 2),
    ((2, 1, 5, 6), 2, 1),
    ((1, 1, 3, 3), 3, 3),
]


#: Cases whose input has tied maxima (see :func:`with_ties`).
TIE_CASES = [((2, 2, 6, 6), 2, 2), ((1, 1, 5, 5), 3, 1)]


def maxpool_forward_slips(x, kernel_size: int = 2, stride: int = 2) -> dict[str, tuple]:
    """What the common mistake in ``maxpool2d_forward`` gives for x (N, C, H, W): explanation ->
    (out, argmax), the argmax counted inside each window."""
    out, indices = F.max_pool2d(float64_tensor(x), kernel_size, stride, return_indices=True)
    rows, columns = indices // x.shape[-1], indices % x.shape[-1]
    starts_y = stride * torch.arange(indices.shape[-2])[:, None]
    starts_x = stride * torch.arange(indices.shape[-1])
    in_window = (rows - starts_y) * kernel_size + (columns - starts_x)
    windows = float64_tensor(x).unfold(2, kernel_size, stride).unfold(3, kernel_size, stride)
    last = kernel_size**2 - 1 - windows.flatten(-2).flip(-1).argmax(-1)  # the last maximum
    last_flat = (starts_y + last // kernel_size) * x.shape[-1] + starts_x + last % kernel_size
    return {
        "argmax counts within each window (0 to kernel_size**2 - 1); it should be the flat "
        "index h * W + w of the maximum in the input plane": (out, in_window),
        "where a window holds its maximum twice (a tie), argmax points at the last one; the "
        "first in reading order (top row first, left to right) wins, as in F.max_pool2d": (
            out,
            last_flat,
        ),
    }


def with_ties(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded and through a ReLU: windows of zeros and repeated maxima, as after a ReLU."""
    return torch.relu(x.round())


def maxpool_backward_slips(dout, argmax, input_shape) -> dict[str, torch.Tensor]:
    """What the common mistake in ``maxpool2d_backward`` gives: gradients assigned to their
    argmax rather than added, (N, C, H, W)."""
    assigned = torch.zeros(input_shape, dtype=torch.float64).flatten(2)
    assigned.scatter_(2, float64_tensor(argmax).long().flatten(2), float64_tensor(dout).flatten(2))
    return {
        "where windows overlap, one input can be the maximum of several windows and must "
        "receive the sum of their gradients: this keeps only one of them (add with "
        "scatter_add_ or +=, don't assign with scatter_ or =)": assigned.view(input_shape)
    }


def circle_pool_slips(x, radius: float) -> dict[str, np.ndarray]:
    """What the common mistakes in ``circle_pool`` give for x (N, C, H, W): explanation ->
    (N, C, H, W)."""
    x = np.asarray(x, dtype=np.float64)
    side = 2 * int(radius) + 1  # of the square that holds the disk
    square = F.max_pool2d(float64_tensor(x), side, stride=1, padding=side // 2).numpy()
    slips = {
        "this is the square window that holds the disk (2 * int(radius) + 1 on a side): keep "
        "only the offsets with dy^2 + dx^2 <= radius^2": square,
        "pixels outside the image count as 0 here, so they win where the image is negative: "
        "pad with -inf (F.pad(x, ..., value=float('-inf')))": reference_circle_pool(
            x, radius, outside=0.0
        ),
    }
    if radius > 0:  # with radius 0, < keeps no offset at all
        rim = (
            "the disk's rim is left out: keep the offsets with dy^2 + dx^2 <= radius^2 (<=, not <)"
        )
        slips[rim] = reference_circle_pool(x, radius, rim=False)
    return slips


def _x(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@exercise("maxpool-forward", "maxpool2d_forward", rules_out=("max-pool",))
def check_maxpool_forward(maxpool2d_forward) -> str:
    for seed, (shape, k, s) in enumerate(CASES + TIE_CASES):
        x = _x(shape, seed)
        expected, indices = F.max_pool2d(x, k, s, return_indices=True)
        what = f"maxpool2d_forward(x {shape}, kernel_size={k}, stride={s})"
        if seed >= len(CASES):
            x = with_ties(x)
            what = f"maxpool2d_forward(x {shape} with tied maxima, kernel_size={k}, stride={s})"
            expected, indices = F.max_pool2d(x, k, s, return_indices=True)
        got = call(maxpool2d_forward, "maxpool2d_forward", x, kernel_size=k, stride=s)
        if not isinstance(got, (tuple, list)) or len(got) != 2:  # grading reads a list too
            raise Mismatch(f"{what}: expected a tuple (out, argmax); got {type(got).__name__}")
        expect_array(got[0], expected, what=f"{what} out")
        slips = {text: argmax for text, (_, argmax) in maxpool_forward_slips(x, k, s).items()}
        expect_array(
            got[1],
            indices,
            what=f"{what} argmax (flat index h * W + w into each input plane)",
            slips=slips,
        )
    return (
        f"out and argmax match F.max_pool2d(return_indices=True) on {len(CASES + TIE_CASES)} "
        "cases, ties included"
    )


@exercise("maxpool-backward", "maxpool2d_backward")
def check_maxpool_backward(maxpool2d_backward) -> str:
    for seed, (shape, k, s) in enumerate(CASES):
        x = _x(shape, seed).requires_grad_()
        out, indices = F.max_pool2d(x, k, s, return_indices=True)
        dout = _x(out.shape, seed + 100)
        out.backward(dout)
        what = f"maxpool2d_backward(dout {tuple(dout.shape)}, argmax, input_shape={shape})"
        got = call(maxpool2d_backward, "maxpool2d_backward", dout, indices, shape)
        slips = maxpool_backward_slips(dout, indices, shape)
        expect_array(got, x.grad, what=what, slips=slips)

    class StudentMaxPool(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            pooled, indices = F.max_pool2d(x, 2, 2, return_indices=True)
            ctx.save_for_backward(indices)
            ctx.shape = tuple(x.shape)
            return pooled

        @staticmethod
        def backward(ctx, dout):
            (indices,) = ctx.saved_tensors
            got = call(maxpool2d_backward, "maxpool2d_backward", dout, indices, ctx.shape)
            return torch.as_tensor(as_array(got, "maxpool2d_backward", ctx.shape), dtype=dout.dtype)

    x = _x((1, 2, 4, 6), 7).requires_grad_()
    expect_gradcheck(StudentMaxPool.apply, (x,))
    return f"equals autograd on {len(CASES)} cases and passes torch.autograd.gradcheck"


def reference_circle_pool(
    x: np.ndarray, radius: float, *, outside: float = -np.inf, rim: bool = True
) -> np.ndarray:
    """Max over the disk dy^2 + dx^2 <= radius^2 around each pixel of ``x`` (N, C, H, W), via
    SciPy; pixels outside the image count as ``outside`` (by default, ignored); ``rim=False``
    leaves out the offsets with dy^2 + dx^2 == radius^2 (a slip)."""
    from scipy.ndimage import maximum_filter

    r = int(np.floor(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    footprint = dy**2 + dx**2 <= radius**2 if rim else dy**2 + dx**2 < radius**2
    return maximum_filter(x, footprint=footprint[None, None], mode="constant", cval=outside)


@exercise("circle-pool", "circle_pool")
def check_circle_pool(circle_pool) -> str:
    cases = [
        ((1, 1, 5, 5), 1),
        ((2, 2, 7, 6), 1.5),
        ((1, 3, 9, 9), 2),
        ((1, 1, 4, 4), 0),
        ((1, 1, 6, 6), 3),
    ]
    for seed, (shape, radius) in enumerate(cases):
        x = _x(shape, seed)
        what = f"circle_pool(x {shape}, radius={radius})"
        expect_array(
            call(circle_pool, "circle_pool", x, radius),
            reference_circle_pool(x.numpy(), radius),
            what=what,
            slips=circle_pool_slips(x, radius),
        )
    return f"matches scipy.ndimage.maximum_filter with a disk footprint on {len(cases)} cases"
