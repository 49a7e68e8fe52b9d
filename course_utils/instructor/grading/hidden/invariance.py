"""Hidden tests for notebook 09: other shapes, shifts, units, step sizes and strides."""

import torch

from course_utils.checks import invariance as inv
from course_utils.checks.compare import float64_tensor
from course_utils.checks.harnesses import ascent_unit
from course_utils.instructor.grading.hidden import hidden
from course_utils.invariance import BlurPool, shift


def _shifted(x, dx, dy, circular=False):
    return shift(float64_tensor(x), int(dx), int(dy), mode="circular" if circular else "zeros")


@hidden(
    "shift-images",
    points=2,
    expected=_shifted,
    slips=inv.shift_slips,
    as_torch=True,
    atol=1e-12,
    rtol=1e-12,
)
def shift_images_cases(rng):
    settings = [((2, 3, 7, 6), 2, -1, True), ((1, 1, 5, 8), -3, 2, False),
                ((3, 2, 6, 6), 5, 0, True), ((1, 3, 8, 5), 0, -6, False)]  # fmt: skip
    return [((rng.normal(size=s), dx, dy), {"circular": c}) for s, dx, dy, c in settings]


def _step(x, w, kind, lr, radius):
    unit = ascent_unit(int(kind), torch.from_numpy(w))
    start = torch.from_numpy(x)
    return inv.ascent_steps(inv.reference_ascent_step, unit, start, float(lr), float(radius), 2)


def _step_slips(x, w, kind, lr, radius):
    unit = ascent_unit(int(kind), torch.from_numpy(w))
    return inv.ascent_slips(unit, torch.from_numpy(x), float(lr), float(radius), 2)


@hidden("ascent-step", points=2, harness="graded_ascent_step", expected=_step, slips=_step_slips)
def ascent_step_cases(rng):
    settings = [((3, 5, 5), 0, 0.3, 1.5), ((2, 3, 3), 1, 0.05, 3.0), ((1, 6, 6), 2, 2.0, 0.7),
                ((3, 4, 4), 1, 1.0, 0.2)]  # fmt: skip
    return [
        ((0.3 * rng.normal(size=s), rng.normal(size=s), kind, lr, radius), {})
        for s, kind, lr, radius in settings
    ]


def _blurred(x, stride=2):
    x = float64_tensor(x)
    return BlurPool(x.shape[1], stride=int(stride)).double()(x)


@hidden("blur-downsample", points=2, expected=_blurred, slips=inv.blur_slips, as_torch=True)
def blur_downsample_cases(rng):
    settings = [((2, 2, 10, 9), 2), ((1, 3, 7, 7), 2), ((1, 1, 12, 12), 4), ((2, 1, 6, 5), 3)]
    return [((rng.normal(size=s),), {"stride": stride}) for s, stride in settings]
