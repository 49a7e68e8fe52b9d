"""Hidden test for notebook 06: both activations, summarised by structure (layer kinds in
order of execution included), against the network the text asks for."""

import numpy as np

from course_utils.checks.harnesses import OVERFIT_FINDINGS
from course_utils.checks.lenet import (
    describe,
    lenet_layer_parameters,
    lenet_parameter_slips,
    overfit_slips,
    reference,
    slips,
)
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


@hidden(
    "overfit-one-batch",
    points=2,
    harness="graded_overfit_one_batch",
    expected=lambda seed: np.ones(len(OVERFIT_FINDINGS)),
    atol=0,
    rtol=0,
    slips=overfit_slips,
)
def overfit_one_batch_cases(rng):
    return [((1,), {}), ((2,), {})]


@hidden(
    "lenet-parameters",
    points=1,
    expected=lambda num_classes: np.asarray(lenet_layer_parameters(num_classes)),
    atol=0,
    rtol=0,
    slips=lenet_parameter_slips,
)
def lenet_parameters_cases(rng):
    return [((1000,), {}), ((7,), {})]
