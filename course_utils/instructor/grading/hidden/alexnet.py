"""Hidden tests for notebooks 07 and 08: other window sizes and constants for LRN, other batches for PCA."""

import numpy as np

from course_utils.checks.alexnet import (
    grouped_parameters,
    grouped_slips,
    lrn_slips,
    pca_expected,
    pca_single_slips,
    torch_lrn,
)
from course_utils.checks.compare import float64_tensor
from course_utils.instructor.grading.hidden import hidden


@hidden(
    "lrn",
    points=3,
    as_torch=True,
    atol=1e-9,
    rtol=1e-7,
    expected=lambda a, n, k, alpha, beta: torch_lrn(float64_tensor(a), n, k, alpha, beta),
    slips=lrn_slips,
)
def lrn_cases(rng):
    settings = [
        ((2, 11, 3, 3), 5, 2.0, 1e-4, 0.75),
        ((1, 4, 5, 2), 3, 1.5, 0.5, 0.6),
        ((3, 2, 2, 2), 9, 1.0, 2.0, 1.0),
    ]
    return [
        ((3 * rng.normal(size=shape),), {"n": n, "k": k, "alpha": alpha, "beta": beta})
        for shape, n, k, alpha, beta in settings
    ]


@hidden(
    "pca-colour",
    points=3,
    as_torch=True,
    atol=1e-9,
    rtol=1e-7,
    expected=pca_expected,
    slips=pca_single_slips,
)
def pca_colour_cases(rng):
    cases = []
    for n, size in ((3, 4), (5, 6)):
        images = (rng.normal(size=(n, size, size, 3)) @ rng.normal(size=(3, 3))).transpose(
            0, 3, 1, 2
        )
        cases.append(((0.5 + 0.1 * images, rng.normal(scale=0.1, size=(n, 3))), {}))
    return cases


@hidden(
    "grouped-params",
    points=1,
    harness="graded_whole_number",
    slips=grouped_slips,
    expected=lambda *case: np.asarray(grouped_parameters(*case)),
)
def grouped_params_cases(rng):
    return [
        ((256, 512, 3, 4, True), {}),
        ((48, 48, 5, 48, False), {}),
        ((12, 30, 7, 3, True), {}),
    ]
