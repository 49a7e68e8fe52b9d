"""Hidden tests for notebook 02: shapes, strides and paddings the public checks do not use."""

import torch.nn.functional as F

from course_utils.checks.compare import float64_tensor
from course_utils.checks.convolution_2d import (
    conv2d_slips,
    im2col_slips,
    learn_kernel_slips,
    least_squares_kernel,
)
from course_utils.instructor.grading.hidden import hidden


def _conv(x, w, b=None, stride=1, padding=0):
    return F.conv2d(
        float64_tensor(x),
        float64_tensor(w),
        None if b is None else float64_tensor(b),
        stride=stride,
        padding=padding,
    )


def _conv_cases(rng):
    settings = [
        (2, 2, 6, 9, 3, 3, 3, 2, 2),
        (1, 4, 5, 5, 2, 5, 5, 1, 0),
        (3, 1, 10, 7, 1, 2, 4, 3, 1),
        (1, 2, 3, 3, 5, 3, 3, 4, 1),
        (2, 3, 8, 8, 4, 1, 1, 1, 0),
    ]
    cases = []
    for n, c_in, h, w, c_out, kh, kw, s, p in settings:
        x, wt = rng.normal(size=(n, c_in, h, w)), rng.normal(size=(c_out, c_in, kh, kw))
        bias = rng.normal(size=c_out) if c_out % 2 else None
        cases.append(((x, wt, bias), {"stride": s, "padding": p}))
    return cases


@hidden("conv2d-naive", points=3, expected=_conv, slips=conv2d_slips, as_torch=True, atol=1e-8)
def conv2d_naive_cases(rng):
    return _conv_cases(rng)


@hidden("conv2d-im2col", points=3, expected=_conv, slips=conv2d_slips, as_torch=True, atol=1e-8)
def conv2d_im2col_cases(rng):
    return _conv_cases(rng)


@hidden(
    "im2col",
    points=2,
    as_torch=True,
    atol=1e-12,
    expected=lambda x, kh, kw, stride=1, padding=0: F.unfold(
        float64_tensor(x), (kh, kw), stride=stride, padding=padding
    ),
    slips=im2col_slips,
)
def im2col_cases(rng):
    settings = [((2, 3, 7, 5), 3, 2, 2, 1), ((1, 1, 6, 6), 6, 6, 1, 0), ((1, 2, 9, 4), 1, 3, 3, 2)]
    return [
        ((rng.normal(size=shape), kh, kw), {"stride": s, "padding": p})
        for shape, kh, kw, s, p in settings
    ]


@hidden(
    "learn-kernel",
    points=2,
    as_torch=True,
    atol=1e-3,
    rtol=0,
    expected=least_squares_kernel,
    slips=learn_kernel_slips,
)
def learn_kernel_cases(rng):
    cases = []
    for size in (3, 2, 3):
        kernel = rng.normal(size=(1, 1, size, size))
        x = rng.normal(size=(3, 1, 10, 10))
        y = F.conv2d(float64_tensor(x), float64_tensor(kernel)).numpy()
        cases.append(((x, y, size), {}))
    return cases
