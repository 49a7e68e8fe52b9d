"""Public check for notebook 06: LeNet-5 built layer by layer, against the paper's table."""

from __future__ import annotations

import torch.nn as nn

from course_utils.checks import Mismatch, call, exercise

#: (C, H, W) after C1, S2, C3, S4, C5 for a 32x32 input (LeCun et al. 1998, figure 2).
PAPER_SHAPES = [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1)]
#: Layer sizes from the same table: (inputs per unit, units) of C1, C3 (dense), C5, F6, output.
PAPER_LAYERS = [(1 * 5 * 5, 6), (6 * 5 * 5, 16), (16 * 5 * 5, 120), (120, 84), (84, 10)]


@exercise("lenet5", "build_lenet5")
def check_lenet5(build_lenet5) -> str:
    from course_utils.models import LeNet5, describe

    expected_params = sum((fan_in + 1) * units for fan_in, units in PAPER_LAYERS)
    for activation, kind in (("tanh", nn.Tanh), ("relu", nn.ReLU)):
        model = call(build_lenet5, "build_lenet5", activation)
        what = f"build_lenet5({activation!r})"
        if not isinstance(model, nn.Module):
            raise Mismatch(
                f"{what}: expected an nn.Module (an nn.Sequential); got {type(model).__name__}"
            )
        if isinstance(model, LeNet5):
            raise Mismatch(
                f"{what}: build it from torch.nn layers yourself, not with course_utils.models.LeNet5"
            )
        try:
            params, n_tanh, n_relu, *rest = describe(model)
        except (RuntimeError, ValueError) as exc:
            raise Mismatch(
                f"{what}: a (3, 1, 32, 32) batch does not go through: {str(exc).splitlines()[0]}"
            ) from None
        out, shapes = tuple(rest[:2]), [tuple(rest[i : i + 3]) for i in range(2, len(rest), 3)]
        if shapes != PAPER_SHAPES:
            raise Mismatch(
                f"{what}: shapes after the conv and pooling layers should be {PAPER_SHAPES}; got {shapes}"
            )
        if out != (3, 10):
            raise Mismatch(f"{what}: expected logits of shape (3, 10) for 3 images; got {out}")
        if params != expected_params:
            raise Mismatch(
                f"{what}: expected {expected_params:,} parameters (dense C3); got {params:,}"
            )
        wanted = n_tanh if kind is nn.Tanh else n_relu
        if wanted != 4 or n_tanh + n_relu != 4:
            raise Mismatch(
                f"{what}: expected 4 {kind.__name__} activations (after C1, C3, C5, F6); "
                f"got {n_tanh} Tanh and {n_relu} ReLU"
            )
    return f"shapes {PAPER_SHAPES[-1]} ... logits (3, 10), {expected_params:,} parameters, tanh and ReLU variants"
