"""Public checks for notebook 04 (3D activations): output sizes from real ``nn.Conv2d`` shapes,
operation counts from torch's own FLOP counter."""

from __future__ import annotations

import itertools
import math
import numbers

import torch

from course_utils.checks import Mismatch, call, exercise, short
from course_utils.checks.compare import (
    consistent_slip,
    equals,
    expect_whole_number,
    is_whole_number,
)


def conv_shape(w_in: int, kernel_size: int, stride: int, padding: int, dilation: int) -> int:
    """Output width of a real ``nn.Conv2d`` on a ``1 x 1 x 1 x w_in`` input."""
    conv = torch.nn.Conv2d(
        1, 1, (1, kernel_size), stride=(1, stride), padding=(0, padding), dilation=(1, dilation)
    )
    return conv(torch.zeros(1, 1, 1, w_in)).shape[-1]


def output_size_slips(w_in: int, kernel_size: int, stride=1, padding=0, dilation=1) -> dict:
    """What the common slips in ``conv_output_size`` give: explanation -> width."""
    k, s, p, d = kernel_size, stride, padding, dilation
    return {
        "the + 1 is missing: a kernel that fits exactly gives one output, not zero": (
            (w_in + 2 * p - d * (k - 1) - 1) // s
        ),
        "the stride is ignored: the window moves by stride positions, so divide by it": (
            w_in + 2 * p - d * (k - 1) - 1 + 1
        ),
        "the dilation is ignored: a kernel of size k with dilation d spans d * (k - 1) + 1 "
        "input positions": (w_in + 2 * p - k) // s + 1,
        "the padding is counted once: it adds p zeros on each side, 2 * p in all": (
            (w_in + p - d * (k - 1) - 1) // s + 1
        ),
        "a dilated kernel spans d * (k - 1) + 1 input positions, not d * k": (
            (w_in + 2 * p - d * k) // s + 1
        ),
    }


@exercise("conv-output-size", "conv_output_size")
def check_conv_output_size(conv_output_size) -> str:
    cases = [
        (w_in, k, s, p, d)
        for w_in, k, s, p, d in itertools.product(
            range(1, 13), range(1, 6), range(1, 4), range(0, 3), (1, 2)
        )
        if w_in + 2 * p >= d * (k - 1) + 1  # else the kernel does not fit: nn.Conv2d refuses
    ]
    not_int = None
    for w_in, k, s, p, d in cases:
        expected = conv_shape(w_in, k, s, p, d)
        got = call(conv_output_size, "conv_output_size", w_in, k, stride=s, padding=p, dilation=d)
        what = (
            f"conv_output_size(w_in={w_in}, kernel_size={k}, stride={s}, padding={p}, dilation={d})"
        )
        if not equals(got, expected):
            hint = consistent_slip(conv_output_size, "conv_output_size", cases, output_size_slips)
            if not hint and isinstance(got, numbers.Real) and abs(got - expected) == 1:
                hint = "off by one: remember the + 1, and the floor"
            elif not hint and isinstance(got, numbers.Real) and math.isfinite(got) and got % 1:
                hint = "a size is a whole number: take the floor of the division, e.g. with //"
            raise Mismatch(
                f"{what}: nn.Conv2d gives {expected}, got {short(got)}"
                + (f" ({hint})" if hint else "")
            )
        not_int = not_int or (None if is_whole_number(got) else (got, what))
    if not_int:  # after all values: a wrong one says more than a type
        expect_whole_number(*not_int)
    return f"equals nn.Conv2d's output width for all {len(cases)} combinations tried"


def counted_macs(h_out: int, w_out: int, c_in: int, c_out: int, kernel_size: int) -> int:
    """Multiply-accumulates of one convolution, counted by ``torch.utils.flop_counter`` (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, c_in, h_out + kernel_size - 1, w_out + kernel_size - 1, device="meta")
    w = torch.zeros(c_out, c_in, kernel_size, kernel_size, device="meta")
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.conv2d(x, w)
    return counter.get_total_flops() // 2


def conv_flops_slips(h_out: int, w_out: int, c_in: int, c_out: int, kernel_size: int) -> dict:
    """What the common slips in ``conv_flops`` give for one layer: explanation -> count."""
    macs = counted_macs(h_out, w_out, c_in, c_out, kernel_size)
    return {
        "a multiply and an add are counted as two; count each multiply-add once": 2 * macs,
        "the input channels are missing: each output is a dot product over "
        "c_in * k * k values": counted_macs(h_out, w_out, 1, c_out, kernel_size),
        "the kernel is square: it has kernel_size * kernel_size weights per input channel": macs
        // kernel_size,
    }


@exercise("conv-flops", "conv_flops")
def check_conv_flops(conv_flops) -> str:
    cases = [
        (28, 28, 192, 32, 5),
        (28, 28, 192, 16, 1),
        (28, 28, 16, 32, 5),
        (55, 55, 3, 96, 11),
        (7, 5, 3, 2, 3),
    ]
    not_int = None
    for case in cases:
        expected = counted_macs(*case)
        got = call(conv_flops, "conv_flops", *case)
        if not equals(got, expected):
            slip = consistent_slip(conv_flops, "conv_flops", cases, conv_flops_slips)
            raise Mismatch(
                f"conv_flops{case}: torch's FLOP counter gives {expected:,} multiply-adds, got "
                f"{short(got)}" + (f" ({slip})" if slip else "")
            )
        not_int = not_int or (None if is_whole_number(got) else (got, f"conv_flops{case}"))
    if not_int:  # after all values: a wrong one says more than a type
        expect_whole_number(*not_int)
    return f"equals torch's FLOP counter (multiply-adds) on {len(cases)} layers"
