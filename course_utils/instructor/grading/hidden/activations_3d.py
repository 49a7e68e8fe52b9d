"""Hidden tests for notebook 04: sizes and layers beyond the public ranges."""

import numpy as np
import torch.nn.functional as F

from course_utils.checks.activations_3d import (
    conv_backward_slips,
    conv_flops_slips,
    conv_gradients,
    conv_shape,
    counted_macs,
    output_size_slips,
)
from course_utils.checks.compare import float64_tensor
from course_utils.instructor.grading.hidden import hidden


@hidden(
    "conv-output-size",
    points=2,
    harness="graded_whole_number",
    slips=output_size_slips,
    expected=lambda w, k, stride=1, padding=0, dilation=1: np.asarray(
        conv_shape(w, k, stride, padding, dilation)
    ),
)
def conv_output_size_cases(rng):
    settings = [
        (20, 3, 1, 3, 1),  # first: it tells the padding counted once from the + 1 missing
        (227, 11, 4, 0, 1),
        (224, 11, 4, 2, 1),
        (55, 3, 2, 0, 1),
        (13, 3, 1, 1, 1),
        (100, 7, 3, 4, 3),
        (31, 4, 5, 0, 2),
        (30, 3, 1, 0, 3),  # the span d * k instead of d * (k - 1) + 1 shows here
    ]
    return [((w, k), {"stride": s, "padding": p, "dilation": d}) for w, k, s, p, d in settings]


@hidden(
    "conv-flops",
    points=2,
    harness="graded_whole_number",
    slips=conv_flops_slips,
    expected=lambda *case: np.asarray(counted_macs(*case)),
)
def conv_flops_cases(rng):
    return [
        ((55, 55, 3, 96, 11), {}),
        ((13, 13, 256, 384, 3), {}),
        ((1, 1, 4096, 10, 1), {}),
        ((9, 4, 7, 3, 2), {}),
    ]


@hidden(
    "conv2d-backward",
    points=3,
    expected=conv_gradients,
    slips=conv_backward_slips,
    picks=(0, 1, 2),
    as_torch=True,
    atol=1e-8,
)
def conv2d_backward_cases(rng):
    settings = [
        ((2, 2, 6, 6), (3, 2, 3, 3), 1, 1),
        ((1, 3, 9, 7), (2, 3, 3, 2), 2, 0),
        ((3, 1, 5, 5), (4, 1, 5, 5), 1, 2),
    ]
    cases = []
    for x_shape, w_shape, stride, padding in settings:
        x, w = rng.normal(size=x_shape), rng.normal(size=w_shape)
        out = F.conv2d(float64_tensor(x), float64_tensor(w), stride=stride, padding=padding)
        dout = rng.normal(size=tuple(out.shape))
        cases.append(((dout, x, w), {"stride": stride, "padding": padding}))
    return cases
