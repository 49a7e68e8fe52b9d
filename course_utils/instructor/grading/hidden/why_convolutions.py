"""Hidden tests for notebook 03: deeper, mixed stacks."""

import numpy as np

from course_utils.checks.harnesses import equivariance_case
from course_utils.checks.why_convolutions import (
    gap_slips,
    measured_receptive_field,
    receptive_field_case_slips,
    reference_gap,
)
from course_utils.instructor.grading.hidden import hidden


@hidden(
    "receptive-field",
    points=2,
    harness="graded_whole_number",
    slips=receptive_field_case_slips,
    expected=lambda layers: np.asarray(measured_receptive_field(layers)),
)
def receptive_field_cases(rng):
    stacks = [
        [(11, 4, 1), (5, 1, 1), (3, 2, 1)],
        [(3, 1, 3), (3, 1, 1)],
        [(2, 2, 1)] * 5,
        [(1, 1, 1)],
        [(3, 1, 1), (3, 2, 1), (3, 1, 2), (5, 2, 1)],
    ]
    return [((stack,), {}) for stack in stacks]


def _case_gap(code, seed, dy, dx):
    f, x = equivariance_case(code, seed)
    return reference_gap(f, x, dy, dx)


def _case_slips(code, seed, dy, dx):
    f, x = equivariance_case(code, seed)
    return gap_slips(f, x, dy, dx)


@hidden(
    "equivariance-gap",
    points=2,
    harness="graded_equivariance_gap",
    expected=_case_gap,
    slips=_case_slips,
)
def equivariance_gap_cases(rng):
    # one equivariant function (a gap of 0) in four; where the signed and absolute gaps differ
    return [((1, 10, 3, -1), {}), ((3, 15, 1, 1), {}), ((4, 12, 1, 5), {}), ((1, 16, 4, 4), {})]
