"""Hidden tests for notebook 10: networks the student has not seen, built inside the sandbox from
plain numbers by ``checks.harnesses``; expected values here, from the public check's functions."""

import numpy as np
import torch

from course_utils.checks import harnesses
from course_utils.checks import transfer_learning as tl
from course_utils.instructor.grading.hidden import hidden


def _backbone(seed):
    return harnesses.feature_backbone(int(seed), dropout=int(seed) % 2 == 1)


def _expected_features(x, batch_size, seed):
    return tl.eval_features(_backbone(seed), torch.from_numpy(x))


def _features_slips(x, batch_size, seed):
    if int(seed) % 2:  # dropout makes training mode random
        return {}
    return {
        tl.TRAINING_MODE: tl.training_mode_features(
            _backbone(seed), torch.from_numpy(x), int(batch_size)
        )
    }


@hidden(
    "frozen-features",
    points=2,
    harness="graded_frozen_features",
    expected=_expected_features,
    slips=_features_slips,
    atol=1e-5,
    rtol=1e-4,
)
def frozen_features_cases(rng):
    shapes = [(7, 6, 3, 20), (12, 9, 5, 21), (5, 5, 5, 22), (9, 7, 4, 24), (1, 6, 4, 26)]
    return [
        ((rng.normal(size=(n, 3, side, side)).astype(np.float32), batch, seed), {})
        for n, side, batch, seed in shapes
    ]


def _lr_expected(codes, head_lr, decay):
    return tl.rule_lrs(harnesses.lr_blocks(codes), float(head_lr), float(decay))


def _lr_slips(codes, head_lr, decay):
    return tl.lr_slips(harnesses.lr_blocks(codes), float(head_lr), float(decay))


@hidden(
    "lr-groups",
    points=2,
    harness="graded_lr_groups",
    expected=_lr_expected,
    slips=_lr_slips,
    atol=1e-12,
    rtol=1e-6,  # a rate computed in float32 is right too
)
def lr_groups_cases(rng):
    cases = []
    for length in (3, 5, 7):
        body = rng.integers(0, 4, size=length)
        body[rng.integers(0, length)] = 0  # at least one block that trains
        codes = np.append(body, 4).astype(np.int64)
        cases.append(
            ((codes, float(rng.choice([0.1, 0.03, 0.01])), float(rng.uniform(0.2, 0.8))), {})
        )
    return cases


def _norm_expected(kind):
    flags = tl.norm_only_flags(*harnesses.norm_network(int(kind)))
    return np.concatenate([flags, flags])


def _norm_slips(kind):
    slips = tl.norm_slips(*harnesses.norm_network(int(kind)))
    return {explanation: np.concatenate([flags, flags]) for explanation, flags in slips.items()}


@hidden(
    "norm-only",
    points=2,
    harness="graded_norm_only",
    expected=_norm_expected,
    slips=_norm_slips,
    atol=0.1,
    rtol=0,
)
def norm_only_cases(rng):
    return [((5,), {}), ((4,), {})]
