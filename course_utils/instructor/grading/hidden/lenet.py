"""Hidden test for notebook 06: both activations, summarised by structure (layer kinds in
order of execution included), against the network the text asks for."""

import numpy as np

from course_utils.checks.lenet import describe, reference, slips
from course_utils.instructor.grading.hidden import hidden


@hidden(
    "lenet5",
    points=3,
    harness="graded_lenet5",
    expected=lambda activation: np.asarray(describe(reference(activation)), dtype=np.float64),
    slips=slips,
)
def lenet5_cases(rng):
    return [(("tanh",), {}), (("relu",), {})]
