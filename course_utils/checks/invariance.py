"""Public checks for notebook 09 (invariance and what CNNs see): shifting images, one projected
gradient-ascent step, blurred subsampling. References: ``invariance.shift``, autograd, and
``invariance.BlurPool``; each common mistake is named."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.checks import Mismatch, call, call_shared, exercise
from course_utils.checks.compare import expect_array, float64_tensor
from course_utils.checks.harnesses import ASCENT_UNITS as UNITS
from course_utils.checks.harnesses import VERDICTS
from course_utils.checks.harnesses import ascent_unit as unit
from course_utils.invariance import BlurPool, binomial_kernel, shift

GRAPH = VERDICTS["ascent-graph"]

SHIFT_CASES = [((1, 1, 4, 5), 1, 0, False), ((2, 3, 6, 6), -2, 1, True),
               ((1, 2, 5, 7), 3, -2, False), ((1, 1, 6, 4), 0, 5, True),
               ((2, 1, 5, 5), -4, -4, False)]  # fmt: skip


def shift_slips(x, dx: int, dy: int, circular: bool) -> dict[str, torch.Tensor]:
    """What the common mistakes in ``shift_images`` give for x (N, C, H, W): explanation -> result."""
    x = float64_tensor(x)
    mode, other = ("circular", "zeros") if circular else ("zeros", "circular")
    slips = {
        "the image moved the other way: a positive dx moves the content right (to larger column "
        "indices) and a positive dy moves it down": shift(x, -dx, -dy, mode=mode),
        f"{'circular' if not circular else 'zero'} filling: with circular={circular} the "
        f"uncovered strip {'is zero' if not circular else 'gets what left the other side'}": shift(
            x, dx, dy, mode=other
        ),
    }
    if abs(dy) < x.shape[-1] and abs(dx) < x.shape[-2]:
        slips[
            "dx and dy are swapped: dx moves along the width (last axis), dy along the height"
        ] = shift(x, dy, dx, mode=mode)
    return slips


@exercise("shift-images", "shift_images")
def check_shift_images(shift_images) -> str:
    for seed, (shape, dx, dy, circular) in enumerate(SHIFT_CASES):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        expected = shift(x, dx, dy, mode="circular" if circular else "zeros")
        what = f"shift_images(x {shape}, dx={dx}, dy={dy}, circular={circular})"
        got = call(shift_images, "shift_images", x, dx, dy, circular=circular)
        expect_array(
            got, expected, what=what, atol=1e-12, rtol=1e-12, slips=shift_slips(x, dx, dy, circular)
        )
    return f"moves right and down, wrapping or zero filled, exactly, on {len(SHIFT_CASES)} cases"


def reference_ascent_step(unit_fn, x: torch.Tensor, lr: float, radius: float) -> torch.Tensor:
    """x + lr * grad unit(x), then scaled back onto the ball ‖x‖ <= radius if it left it."""
    stepped = x.detach() + lr * torch.func.grad(unit_fn)(x.detach())
    return stepped * (radius / stepped.norm()).clamp(max=1.0)


def _descent(unit_fn, x, lr, radius):
    stepped = x.detach() - lr * torch.func.grad(unit_fn)(x.detach())
    return stepped * (radius / stepped.norm()).clamp(max=1.0)


def _unprojected(unit_fn, x, lr, radius):
    return x.detach() + lr * torch.func.grad(unit_fn)(x.detach())


def _rescaled(unit_fn, x, lr, radius):
    stepped = _unprojected(unit_fn, x, lr, radius)
    return stepped * radius / stepped.norm()


#: The common mistakes in ``ascent_step``: explanation -> the step that mistake takes.
ASCENT_SLIPS = {
    "this is a descent step: to make the unit fire more, move along +gradient": _descent,
    "the step is not projected: after the step, scale x back to norm radius when it is "
    "larger (x * min(1, radius / ‖x‖))": _unprojected,
    "this always rescales to norm radius; the constraint is ‖x‖ <= radius, so a step that "
    "stays inside the ball is kept as it is": _rescaled,
}


def ascent_steps(step, unit_fn, x: torch.Tensor, lr: float, radius: float, steps: int = 1):
    """``steps`` chained applications of ``step`` from x, stacked (steps, *x.shape)."""
    path = []
    for _ in range(steps):
        x = step(unit_fn, x, lr, radius)
        path.append(x)
    return torch.stack(path)


def ascent_slips(unit_fn, x: torch.Tensor, lr: float, radius: float, steps: int = 1) -> dict:
    """What the common mistakes in ``ascent_step`` give over ``steps`` chained steps."""
    return {
        text: ascent_steps(step, unit_fn, x, lr, radius, steps)
        for text, step in ASCENT_SLIPS.items()
    }


def _hinted(error: str, fix: str, fn, name: str, *args, **kwargs):
    """:func:`call`, with ``fix`` added to the line when the student's code raised an error whose
    text holds ``error``."""
    try:
        return call(fn, name, *args, **kwargs)
    except Mismatch as exc:
        if error not in str(exc):
            raise
        raise Mismatch(f"{exc}: {fix}") from None


ASCENT_CASES = [((3, 3, 3), 0, 0.5, 1.0), ((1, 5, 5), 1, 0.1, 2.0), ((2, 4, 4), 2, 1.0, 0.5),
                ((3, 2, 2), 0, 0.01, 10.0)]  # fmt: skip


def ascent_inputs(shape, kind: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The start x and weights w (both ``shape``, float64) of one ascent-step case."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(*shape, generator=g, dtype=torch.float64)
    x = 0.3 * torch.randn(*shape, generator=g, dtype=torch.float64)
    return x, w


@exercise("ascent-step", "ascent_step")
def check_ascent_step(ascent_step) -> str:
    for seed, (shape, kind, lr, radius) in enumerate(ASCENT_CASES):
        x, w = ascent_inputs(shape, kind, seed)
        what = f"ascent_step(unit x -> {UNITS[kind]}, x {shape}, lr={lr}, radius={radius})"
        expected = ascent_steps(reference_ascent_step, unit(kind, w), x, lr, radius, 2)
        slips = ascent_slips(unit(kind, w), x, lr, radius, 2)
        got = _hinted(
            "does not require grad",
            "start from a copy of x that records gradients, "
            "x = x.detach().clone().requires_grad_(), then call unit(x)",
            ascent_step, "ascent_step", unit(kind, w.clone()), x, lr, radius,
        )  # fmt: skip
        if not isinstance(got, torch.Tensor):
            returned = "NumPy array" if isinstance(got, np.ndarray) else type(got).__name__
            raise Mismatch(
                f"{what}: returned a {returned}; return a torch tensor (each step's "
                "result is the next step's x)"
            )
        if got.requires_grad:
            raise Mismatch(f"{what}: {GRAPH}")
        expect_array(got, expected[0], what=what, slips={k: v[0] for k, v in slips.items()})
        again = call_shared(ascent_step, "ascent_step", unit(kind, w.clone()), got, lr, radius)
        expect_array(  # a loop feeds each result back: leftover gradients show here
            again, expected[1], what=f"{what}, then a second step from its result", slips={
                k: v[1] for k, v in slips.items()})  # fmt: skip
    return f"equals autograd's step and the projection on {len(ASCENT_CASES)} cases, twice each"


def blur_slips(x, stride: int) -> dict[str, torch.Tensor]:
    """What the common mistakes in ``blur_downsample`` give for x (N, C, H, W)."""
    x = float64_tensor(x)
    kernel = binomial_kernel(3).to(torch.float64).expand(x.shape[1], 1, 3, 3)
    zero_padded = F.conv2d(F.pad(x, (1,) * 4), kernel, stride=stride, groups=x.shape[1])
    return {
        "the borders differ: pad with mode='reflect' (F.pad(x, (1, 1, 1, 1), mode='reflect')), "
        "not zeros, so the edge pixels are not darkened": zero_padded,
        "the kernel is not normalised: divide [1, 2, 1] x [1, 2, 1] by 16 so that it sums to 1": (
            16 * BlurPool(x.shape[1], stride=stride).double()(x)
        ),
        "this subsamples without blurring first": x[..., ::stride, ::stride],
    }


BLUR_CASES = [((1, 1, 6, 6), 2), ((2, 3, 8, 7), 2), ((1, 2, 9, 9), 3), ((1, 4, 5, 8), 1)]


@exercise("blur-downsample", "blur_downsample")
def check_blur_downsample(blur_downsample) -> str:
    for seed, (shape, stride) in enumerate(BLUR_CASES):
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        expected = BlurPool(shape[1], stride=stride).double()(x)
        what = f"blur_downsample(x {shape}, stride={stride})"
        got = _hinted(
            "scalar type", "make the kernel with dtype=x.dtype, device=x.device",
            blur_downsample, "blur_downsample", x, stride=stride,
        )  # fmt: skip
        expect_array(got, expected, what=what, slips=blur_slips(x, stride))
    return f"blur and subsampling agree with the reference on {len(BLUR_CASES)} cases"
