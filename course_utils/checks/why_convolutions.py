"""Public checks for notebook 03 (why convolutions): the receptive field, measured with autograd."""

from __future__ import annotations

import torch

from course_utils.checks import call, exercise, expect_equal


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


@exercise("receptive-field", "receptive_field")
def check_receptive_field(receptive_field) -> str:
    for layers in CASES:
        expected = measured_receptive_field(layers)
        got = call(receptive_field, "receptive_field", list(layers))
        expect_equal(got, expected, what=f"receptive_field({layers})")
    return f"matches the receptive field measured from input gradients on {len(CASES)} stacks"
