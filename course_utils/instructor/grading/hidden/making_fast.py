"""Hidden tests for notebook 11: other shapes and blocks."""

import torch.nn.functional as F

from course_utils.checks.compare import float64_tensor
from course_utils.checks.making_fast import space_to_depth_slips
from course_utils.instructor.grading.hidden import hidden


@hidden(
    "space-to-depth",
    points=2,
    as_torch=True,
    atol=0,
    rtol=0,
    expected=lambda x, block: F.pixel_unshuffle(float64_tensor(x), block),
    slips=space_to_depth_slips,
)
def space_to_depth_cases(rng):
    settings = [((2, 3, 6, 6), 3), ((1, 4, 8, 4), 2), ((1, 1, 12, 12), 4), ((3, 2, 2, 6), 2)]
    return [((rng.normal(size=shape), block), {}) for shape, block in settings]
