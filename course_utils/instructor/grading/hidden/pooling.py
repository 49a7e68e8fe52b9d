"""Hidden tests for notebook 05: other window sizes, strides and radii."""

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.checks.compare import float64_tensor
from course_utils.checks.pooling import (
    circle_pool_slips,
    maxpool_backward_slips,
    maxpool_forward_slips,
    reference_circle_pool,
    with_ties,
)
from course_utils.instructor.grading.hidden import hidden


def _pool(x, kernel_size=2, stride=2):
    return F.max_pool2d(float64_tensor(x), kernel_size, stride, return_indices=True)


@hidden(
    "maxpool-forward",
    points=2,
    expected=_pool,
    slips=maxpool_forward_slips,
    picks=(0, 1),
    as_torch=True,
)
def maxpool_forward_cases(rng):
    settings = [
        ((2, 2, 8, 6), 2, 2),
        ((1, 3, 9, 9), 3, 2),
        ((1, 1, 7, 5), 3, 1),
        ((3, 1, 4, 4), 4, 4),
    ]
    cases = [
        ((rng.normal(size=shape),), {"kernel_size": k, "stride": s}) for shape, k, s in settings
    ]
    tied = with_ties(float64_tensor(rng.normal(size=(2, 1, 6, 7)))).numpy()
    return [*cases, ((tied,), {"kernel_size": 3, "stride": 2})]


def _backward(dout, argmax, input_shape):
    x = torch.zeros(input_shape, dtype=torch.float64).flatten(2)
    x.scatter_add_(2, float64_tensor(argmax).long().flatten(2), float64_tensor(dout).flatten(2))
    return x.view(input_shape)


@hidden(
    "maxpool-backward", points=3, expected=_backward, slips=maxpool_backward_slips, as_torch=True
)
def maxpool_backward_cases(rng):
    cases = []
    for shape, k, s in [((2, 2, 8, 6), 2, 2), ((1, 3, 9, 9), 3, 2), ((1, 1, 7, 5), 3, 1)]:
        out, argmax = F.max_pool2d(
            float64_tensor(rng.normal(size=shape)), k, s, return_indices=True
        )
        cases.append(((rng.normal(size=out.shape), argmax.numpy(), shape), {}))
    return cases


@hidden(
    "circle-pool",
    points=3,
    as_torch=True,
    expected=lambda x, radius: reference_circle_pool(np.asarray(x, dtype=np.float64), radius),
    slips=circle_pool_slips,
)
def circle_pool_cases(rng):
    return [
        ((rng.normal(size=shape), r), {})
        for shape, r in [
            ((1, 2, 8, 8), 2.5),
            ((2, 1, 6, 9), 1),
            ((1, 1, 5, 5), 4),
            ((1, 1, 4, 5), 0),
        ]
    ]
