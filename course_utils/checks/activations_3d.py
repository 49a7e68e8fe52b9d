"""Public checks for notebook 04 (3D activations): output sizes from real ``nn.Conv2d`` shapes,
operation counts from torch's own FLOP counter, a convolution's backward pass against autograd
and finite differences."""

from __future__ import annotations

import itertools
import math
import numbers

import torch
import torch.nn.functional as F

from course_utils.checks import Mismatch, call, exercise, short
from course_utils.checks.compare import (
    as_array,
    consistent_slip,
    equals,
    expect_array,
    expect_counts,
    expect_gradcheck,
    expect_whole_number,
    float64_tensor,
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
    expect_counts(
        conv_flops,
        "conv_flops",
        cases,
        counted_macs,
        conv_flops_slips,
        what=lambda case: f"conv_flops{case}",
        reference=lambda count: f"torch's FLOP counter gives {count:,} multiply-adds",
    )
    return f"equals torch's FLOP counter (multiply-adds) on {len(cases)} layers"


#: (x shape, weight shape, stride, padding) of the backward check: one channel, several, a
#: stride with padding, a kernel as large as the input, a stride that leaves pixels unread.
BACKWARD_CASES = [
    ((1, 1, 5, 5), (1, 1, 3, 3), 1, 0),
    ((2, 3, 6, 5), (4, 3, 3, 3), 1, 1),
    ((2, 2, 7, 7), (3, 2, 3, 3), 2, 1),
    ((1, 2, 4, 4), (2, 2, 4, 4), 1, 0),
    ((2, 1, 8, 7), (2, 1, 2, 3), 3, 0),
]


def conv_gradients(dout, x, w, stride: int = 1, padding: int = 0):
    """(dx, dw, db) of ``F.conv2d(x, w, b, stride, padding)`` for the upstream gradient dout,
    by autograd in float64."""
    x = float64_tensor(x).detach().clone().requires_grad_()  # never the caller's own tensors
    w = float64_tensor(w).detach().clone().requires_grad_()
    b = torch.zeros(w.shape[0], dtype=torch.float64, requires_grad=True)
    F.conv2d(x, w, b, stride=stride, padding=padding).backward(float64_tensor(dout))
    return x.grad, w.grad, b.grad


def conv_backward_slips(dout, x, w, stride: int = 1, padding: int = 0) -> dict[str, tuple]:
    """What the common mistakes in ``conv2d_backward`` give: explanation -> (dx, dw, db)."""
    dx, dw, db = conv_gradients(dout, x, w, stride, padding)
    flipped, _, _ = conv_gradients(dout, x, float64_tensor(w).flip(-2, -1), stride, padding)
    first = float64_tensor(dout)[:1]
    return {
        "dx comes back through the kernel flipped in both axes: the forward pass slides w as it "
        "is, so dx spreads each gradient over its window with w as it is (F.fold or "
        "F.conv_transpose2d with w itself)": (flipped, dw, db),
        "dw and db add up only the first image: sum over the whole batch": (
            dx,
            conv_gradients(first, float64_tensor(x)[:1], w, stride, padding)[1],
            first.sum((0, 2, 3)),
        ),
        "db is the mean over the positions and images; the bias is added at every position of "
        "every image, so db is the sum": (dx, dw, float64_tensor(dout).mean((0, 2, 3))),
    }


@exercise("conv2d-backward", "conv2d_backward", rules_out=("autograd",))
def check_conv2d_backward(conv2d_backward) -> str:
    for seed, (x_shape, w_shape, stride, padding) in enumerate(BACKWARD_CASES):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(*x_shape, generator=g, dtype=torch.float64)
        w = torch.randn(*w_shape, generator=g, dtype=torch.float64)
        out = F.conv2d(x, w, stride=stride, padding=padding)
        dout = torch.randn(out.shape, generator=g, dtype=torch.float64)
        what = (
            f"conv2d_backward(dout {tuple(dout.shape)}, x {x_shape}, w {w_shape}, "
            f"stride={stride}, padding={padding})"
        )
        got = call(conv2d_backward, "conv2d_backward", dout, x, w, stride=stride, padding=padding)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            size = f" of {len(got)}" if isinstance(got, (tuple, list)) else ""
            raise Mismatch(
                f"{what}: expected a tuple (dx, dw, db); got a {type(got).__name__}{size}"
            )
        slips = conv_backward_slips(dout, x, w, stride, padding)
        for k, (name, expected) in enumerate(
            zip(("dx", "dw", "db"), conv_gradients(dout, x, w, stride, padding), strict=True)
        ):
            picked = {why: wrong[k] for why, wrong in slips.items()}
            expect_array(got[k], expected, what=f"{what} {name}", atol=1e-8, slips=picked)
    _gradcheck_conv_backward(conv2d_backward)
    return (
        f"dx, dw and db equal autograd's on {len(BACKWARD_CASES)} cases and pass "
        "torch.autograd.gradcheck"
    )


def _gradcheck_conv_backward(conv2d_backward) -> None:
    """The student's backward as a ``torch.autograd.Function`` against finite differences."""

    class StudentConv(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w):
            ctx.save_for_backward(x, w)
            return F.conv2d(x, w, stride=2, padding=1)

        @staticmethod
        def backward(ctx, dout):
            x, w = ctx.saved_tensors
            got = call(conv2d_backward, "conv2d_backward", dout, x, w, stride=2, padding=1)
            dx = as_array(got[0], "conv2d_backward dx", tuple(x.shape))
            dw = as_array(got[1], "conv2d_backward dw", tuple(w.shape))
            return torch.as_tensor(dx, dtype=x.dtype), torch.as_tensor(dw, dtype=w.dtype)

    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    expect_gradcheck(StudentConv.apply, (x, w))
