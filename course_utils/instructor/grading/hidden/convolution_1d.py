"""Hidden tests for notebook 01: lengths, kernels, paddings and strides the public checks do not use."""

import numpy as np

from course_utils.checks.convolution_1d import (
    conv1d_slips,
    conv_matrix_reference,
    conv_matrix_slips,
    convolve_slips,
    torch_conv1d,
)
from course_utils.instructor.grading.hidden import hidden


@hidden("convolve-full", points=2, expected=lambda x, w: np.convolve(x, w), slips=convolve_slips)
def convolve_cases(rng):
    shapes = [(11, 4), (7, 7), (2, 6), (13, 1), (9, 2)]
    return [((rng.normal(size=n) * 3, rng.uniform(-2, 2, size=k)), {}) for n, k in shapes]


@hidden("conv-matrix", points=3, expected=conv_matrix_reference, slips=conv_matrix_slips)
def conv_matrix_cases(rng):
    settings = [(4, 12, 0), (4, 12, 3), (2, 5, 1), (6, 6, 2), (1, 8, 0)]
    return [((rng.normal(size=k), n), {"padding": p}) for k, n, p in settings]


@hidden(
    "conv1d-windows",
    points=3,
    expected=lambda x, w, stride=1, padding=0: torch_conv1d(x, w, stride=stride, padding=padding),
    slips=conv1d_slips,
)
def conv1d_windows_cases(rng):
    settings = [(17, 4, 3, 0), (17, 4, 3, 2), (10, 10, 1, 0), (12, 3, 5, 1), (8, 2, 2, 3)]
    return [
        ((rng.normal(size=n), rng.normal(size=k)), {"stride": s, "padding": p})
        for n, k, s, p in settings
    ]
