"""Public checks for notebook 04 (3D activations): output sizes from real ``nn.Conv2d`` shapes,
operation counts from torch's own FLOP counter."""

from __future__ import annotations

import itertools
import math
import numbers

import torch

from course_utils.checks import Mismatch, call, consistent_slip, equals, exercise, short


def conv_shape(w_in: int, kernel_size: int, stride: int, padding: int, dilation: int) -> int:
    """Output width of a real ``nn.Conv2d`` on a ``1 x 1 x 1 x w_in`` input."""
    conv = torch.nn.Conv2d(
        1, 1, (1, kernel_size), stride=(1, stride), padding=(0, padding), dilation=(1, dilation)
    )
    return conv(torch.zeros(1, 1, 1, w_in)).shape[-1]


@exercise("conv-output-size", "conv_output_size")
def check_conv_output_size(conv_output_size) -> str:
    tried = 0
    for w_in, k, s, p, d in itertools.product(
        range(1, 13), range(1, 6), range(1, 4), range(0, 3), (1, 2)
    ):
        if w_in + 2 * p < d * (k - 1) + 1:
            continue  # the kernel does not fit: nn.Conv2d refuses
        expected = conv_shape(w_in, k, s, p, d)
        got = call(conv_output_size, "conv_output_size", w_in, k, stride=s, padding=p, dilation=d)
        if not equals(got, expected):
            hint = ""
            if isinstance(got, numbers.Real) and abs(got - expected) == 1:
                hint = " (off by one: remember the + 1, and the floor)"
            elif isinstance(got, numbers.Real) and math.isfinite(got) and got % 1:
                hint = " (a size is a whole number: take the floor of the division, e.g. with //)"
            raise Mismatch(
                f"conv_output_size(w_in={w_in}, kernel_size={k}, stride={s}, padding={p}, "
                f"dilation={d}): nn.Conv2d gives {expected}, got {short(got)}{hint}"
            )
        tried += 1
    return f"equals nn.Conv2d's output width for all {tried} combinations tried"


def counted_macs(h_out: int, w_out: int, c_in: int, c_out: int, kernel_size: int) -> int:
    """Multiply-accumulates of one convolution, counted by ``torch.utils.flop_counter`` (FLOPs / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, c_in, h_out + kernel_size - 1, w_out + kernel_size - 1, device="meta")
    w = torch.zeros(c_out, c_in, kernel_size, kernel_size, device="meta")
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.conv2d(x, w)
    return counter.get_total_flops() // 2


@exercise("conv-flops", "conv_flops")
def check_conv_flops(conv_flops) -> str:
    cases = [
        (28, 28, 192, 32, 5),
        (28, 28, 192, 16, 1),
        (28, 28, 16, 32, 5),
        (55, 55, 3, 96, 11),
        (7, 5, 3, 2, 3),
    ]
    for case in cases:
        expected = counted_macs(*case)
        got = call(conv_flops, "conv_flops", *case)
        if not equals(got, expected):
            slips = {
                "a multiply and an add are counted as two; count each multiply-add once": [
                    2 * counted_macs(*c) for c in cases
                ],
                "the input channels are missing: each output is a dot product over "
                "c_in * k * k values": [counted_macs(h, w, 1, co, k) for h, w, _, co, k in cases],
                "the kernel is square: it has kernel_size * kernel_size weights per input "
                "channel": [counted_macs(*c) // c[-1] for c in cases],
            }
            slip = consistent_slip(conv_flops, "conv_flops", cases, slips)
            raise Mismatch(
                f"conv_flops{case}: torch's FLOP counter gives {expected:,} multiply-adds, got "
                f"{short(got)}" + (f" ({slip})" if slip else "")
            )
    return f"equals torch's FLOP counter (multiply-adds) on {len(cases)} layers"
