"""Public checks for notebook 03 (why convolutions): the receptive field, measured with autograd,
and a test of equivariance to circular shifts."""

from __future__ import annotations

import torch

from course_utils.checks import Mismatch, call, exercise, short
from course_utils.checks.compare import (
    consistent_slip,
    equals,
    expect_array,
    expect_whole_number,
    is_whole_number,
)
from course_utils.checks.harnesses import EQUIVARIANCE_FUNCTIONS, equivariance_case


def measured_receptive_field(layers) -> int:
    """Receptive field of the centre output unit of a 1D conv stack, from the input gradient.

    ``layers``: (kernel_size, stride, dilation) per layer, input first. All weights are 1, so
    every input that can influence the unit gets a non-zero gradient.
    """
    length = 1 + 2 * sum((k - 1) * d for k, _, d in layers) * max(
        1, int(torch.tensor([s for _, s, _ in layers]).prod())
    )
    x = torch.zeros(1, 1, length + 8, dtype=torch.float64, requires_grad=True)
    h = x
    for k, s, d in layers:
        h = torch.nn.functional.conv1d(
            h, torch.ones(1, 1, k, dtype=torch.float64), stride=s, dilation=d
        )
    h[0, 0, h.shape[-1] // 2].backward()
    touched = torch.nonzero(x.grad[0, 0]).flatten()
    return int(touched.max() - touched.min() + 1)


CASES = [
    [(3, 1, 1)],
    [(3, 1, 1), (3, 1, 1)],
    [(3, 1, 1)] * 4,
    [(5, 1, 1), (3, 2, 1), (3, 1, 1)],
    [(3, 2, 1), (3, 2, 1), (3, 2, 1)],
    [(3, 1, 1), (3, 1, 2), (3, 1, 4)],
    [(7, 2, 1), (3, 1, 2), (1, 1, 1)],
]


_CHANGED = {
    "the strides are ignored: after a layer with stride s, each step of the next layer's "
    "kernel covers s times as many input pixels": lambda k, s, d: (k, 1, d),
    "the dilations are ignored: a kernel of size k with dilation d spans (k - 1) * d + 1 "
    "positions": lambda k, s, d: (k, s, 1),
    "each layer's own stride is counted in its step: only the strides of the layers "
    "below it (closer to the input) count": lambda k, s, d: (k, s, d * s),
}
_REVERSED = "the layers are taken in reverse: layers[0] is the one next to the input"


def receptive_field_case_slips(layers) -> dict[str, int]:
    """The usual slips in the exercise, each with the field it gives for ``layers``, measured on
    the stack changed to match (so no check holds a formula for the answer)."""
    slips = {
        text: measured_receptive_field([change(*layer) for layer in layers])
        for text, change in _CHANGED.items()
    }
    slips[_REVERSED] = measured_receptive_field(list(layers)[::-1])
    return slips


@exercise("receptive-field", "receptive_field")
def check_receptive_field(receptive_field) -> str:
    not_int = None
    for layers in CASES:
        expected = measured_receptive_field(layers)
        got = call(receptive_field, "receptive_field", list(layers))
        if not equals(got, expected):
            cases = [(list(stack),) for stack in CASES]
            slip = consistent_slip(
                receptive_field, "receptive_field", cases, receptive_field_case_slips
            )
            what = f"receptive_field({layers})"
            raise Mismatch(
                f"{what}: expected {expected}, got {short(got)}" + (f" ({slip})" if slip else "")
            )
        not_int = not_int or (None if is_whole_number(got) else (got, f"receptive_field({layers})"))
    if not_int:  # after all values: a wrong one says more than a type
        expect_whole_number(*not_int)
    return f"matches the receptive field measured from input gradients on {len(CASES)} stacks"


def reference_gap(f, x, dy: int, dx: int) -> float:
    """max |f(shift x) - shift f(x)| for the circular shift by (dy, dx) of the last two axes."""
    return (f(x.roll((dy, dx), dims=(-2, -1))) - f(x).roll((dy, dx), dims=(-2, -1))).abs().max()


def gap_slips(f, x, dy: int, dx: int) -> dict[str, float]:
    """What the common mistakes in ``equivariance_gap`` give: explanation -> the gap."""
    moved_out, out = f(x.roll((dy, dx), dims=(-2, -1))), f(x)  # f run twice, not once per slip
    difference = moved_out - out.roll((dy, dx), dims=(-2, -1))
    return {
        "this measures invariance, f(shift x) against f(x): for equivariance shift the output "
        "too, f(shift x) against shift f(x)": (moved_out - out).abs().max(),
        "the output is shifted the other way: shift f(x) by the same (dy, dx) as x": (
            (moved_out - out.roll((-dy, -dx), dims=(-2, -1))).abs().max()
        ),
        "this is the mean difference; the gap is the largest one (max)": difference.abs().mean(),
        "this is the largest signed difference; the gap is the largest absolute one (.abs() "
        "before .max())": difference.max(),
    }


#: (function code of harnesses.EQUIVARIANCE_FUNCTIONS, seed, dy, dx)
GAP_CASES = [(1, 1, 2, 3), (3, 3, 0, 4), (0, 0, 2, 3), (4, 4, 3, 1), (1, 6, 1, -2), (3, 7, 5, 5)]


@exercise("equivariance-gap", "equivariance_gap")
def check_equivariance_gap(equivariance_gap) -> str:
    for code, seed, dy, dx in GAP_CASES:
        f, x = equivariance_case(code, seed)
        what = f"equivariance_gap({EQUIVARIANCE_FUNCTIONS[code]}, x {tuple(x.shape)}, {dy}, {dx})"
        got = call(equivariance_gap, "equivariance_gap", f, x, dy, dx)
        expect_array(got, reference_gap(f, x, dy, dx), what=what, slips=gap_slips(f, x, dy, dx))
    return (
        f"equals max |f(shift x) - shift f(x)| on {len(GAP_CASES)} cases: convolutions with "
        "circular and zero padding, ReLU, max pooling and a function that is not equivariant"
    )
