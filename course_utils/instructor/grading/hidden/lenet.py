"""Hidden test for notebook 06: both activations, summarised by structure, against models.LeNet5."""

import numpy as np

from course_utils.instructor.grading.hidden import hidden
from course_utils.models import LeNet5, describe


@hidden(
    "lenet5",
    points=3,
    harness="graded_lenet5",
    expected=lambda activation: np.asarray(
        describe(LeNet5(activation=activation)), dtype=np.float64
    ),
)
def lenet5_cases(rng):
    return [(("tanh",), {}), (("relu",), {})]
