"""Hidden tests for notebook 03: deeper, mixed stacks."""

import numpy as np

from course_utils.checks.why_convolutions import (
    measured_receptive_field,
    receptive_field_case_slips,
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
