"""Public checks for notebook 02 (convolution in 2D): against ``F.conv2d`` and ``F.unfold``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from course_utils.checks import Mismatch, call, exercise
from course_utils.checks.compare import expect_array, float64_tensor
from course_utils.checks.convolution_1d import FLIPPED

#: (N, C_in, H, W, C_out, kh, kw, stride, padding): toy, strided, padded, kernel as large as the input.
CASES = [
    (1, 1, 5, 5, 1, 3, 3, 1, 0),
    (2, 3, 7, 6, 4, 3, 3, 1, 1),
    (2, 2, 9, 9, 3, 3, 2, 2, 1),
    (1, 3, 4, 4, 2, 4, 4, 1, 0),
    (3, 1, 8, 7, 2, 1, 1, 3, 0),
]


def _inputs(case, seed):
    n, c_in, h, w, c_out, kh, kw, stride, padding = case
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_in, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(c_out, c_in, kh, kw, generator=g, dtype=torch.float64)
    bias = torch.randn(c_out, generator=g, dtype=torch.float64)
    return x, weight, bias, stride, padding


def _describe(x, weight, stride, padding):
    return f"x {tuple(x.shape)}, w {tuple(weight.shape)}, stride {stride}, padding {padding}"


NO_BIAS = "the bias is missing: add bias[o] to every value of output channel o"
STRIDE_IGNORED = "the stride is ignored: move the window by `stride` pixels between outputs"
PADDING_IGNORED = "the padding is ignored: pad x with `padding` zeros on every side first (F.pad)"


def conv2d_slips(x, weight, bias=None, stride=1, padding=0) -> dict[str, torch.Tensor]:
    """What the common mistakes in a conv2d exercise give for x (N, C_in, H, W), weight
    (C_out, C_in, kh, kw), bias (C_out,) or None: explanation -> (N, C_out, H_out, W_out)."""
    x, weight, bias = (
        float64_tensor(x),
        float64_tensor(weight),
        None if bias is None else float64_tensor(bias),
    )
    slips = {FLIPPED: F.conv2d(x, weight.flip(-2, -1), bias, stride=stride, padding=padding)}
    if bias is not None:
        slips[NO_BIAS] = F.conv2d(x, weight, None, stride=stride, padding=padding)
    if stride != 1:  # the shape slips (the public check names them from the shape alone)
        slips[STRIDE_IGNORED] = F.conv2d(x, weight, bias, padding=padding)
    if padding:
        slips[PADDING_IGNORED] = F.conv2d(x, weight, bias, stride=stride)
    return slips


def im2col_slips(x, kh: int, kw: int, stride: int = 1, padding: int = 0) -> dict[str, torch.Tensor]:
    """What the common mistakes in ``im2col`` give for x (N, C, H, W): explanation ->
    (N, C * kh * kw, L)."""
    x = float64_tensor(x)
    columns = F.unfold(x, (kh, kw), stride=stride, padding=padding)
    n, rows, windows = columns.shape
    h_out = F.conv2d(x[:, :1], x.new_ones(1, 1, kh, kw), stride=stride, padding=padding).shape[2]
    return {
        "the rows are ordered kernel position first, then channel; F.unfold orders them "
        "channel first: row c * kh * kw + i * kw + j": columns.view(n, -1, kh * kw, windows)
        .transpose(1, 2)
        .reshape(n, rows, windows),
        "the windows are listed column by column; list them row by row (left to right, then "
        "down)": columns.view(n, rows, h_out, -1).transpose(2, 3).reshape(n, rows, windows),
    }


def shape_slip(got_shape, x, kh: int, kw: int, stride: int, padding: int) -> str:
    """The slip that gives an output of ``got_shape`` (its last two sizes) for windows of
    (kh, kw) on x (N, C, H, W), or ""."""
    height, width = x.shape[-2:]

    def size(s: int, p: int) -> tuple[int, int]:
        return (height + 2 * p - kh) // s + 1, (width + 2 * p - kw) // s + 1

    got = tuple(got_shape[-2:])
    if stride != 1 and got == size(1, padding):
        return STRIDE_IGNORED
    if padding and got == size(stride, 0):
        return PADDING_IGNORED
    return ""


def _expect_conv(got, x, weight, bias, stride, padding, what):
    """``got`` against ``F.conv2d(x, weight, bias, stride, padding)``, naming a common slip."""
    expected = F.conv2d(x, weight, bias, stride=stride, padding=padding)
    if hasattr(got, "shape") and tuple(got.shape) != tuple(expected.shape):
        slip = shape_slip(got.shape, x, *weight.shape[-2:], stride, padding)
        raise Mismatch(
            f"{what}: expected output {tuple(expected.shape)} for stride {stride}, padding {padding}; "
            f"got {tuple(got.shape)}" + (f" ({slip})" if slip else "")
        )
    slips = conv2d_slips(x, weight, bias, stride, padding)
    expect_array(got, expected, what=what, atol=1e-8, slips=slips)


def _check_conv(fn, name: str) -> str:
    for seed, case in enumerate(CASES):
        x, weight, bias, stride, padding = _inputs(case, seed)
        what = f"{name}({_describe(x, weight, stride, padding)})"
        got = call(fn, name, x, weight, bias, stride=stride, padding=padding)
        _expect_conv(got, x, weight, bias, stride, padding, what)
    x, weight, _, stride, padding = _inputs(CASES[1], 99)
    got = call(fn, name, x, weight, None, stride=stride, padding=padding)
    _expect_conv(got, x, weight, None, stride, padding, f"{name}(..., b=None)")
    return f"matches F.conv2d on {len(CASES) + 1} cases (strides, padding, channels, no bias)"


@exercise("conv2d-naive", "conv2d_naive", rules_out=("convolution", "unfold"))
def check_conv2d_naive(conv2d_naive) -> str:
    return _check_conv(conv2d_naive, "conv2d_naive")


@exercise("im2col", "im2col", rules_out=("unfold",))
def check_im2col(im2col) -> str:
    for seed, case in enumerate(CASES):
        x, weight, _, stride, padding = _inputs(case, seed)
        kh, kw = weight.shape[-2:]
        expected = F.unfold(x, (kh, kw), stride=stride, padding=padding)
        what = f"im2col(x {tuple(x.shape)}, kh={kh}, kw={kw}, stride={stride}, padding={padding})"
        got = call(im2col, "im2col", x, kh, kw, stride=stride, padding=padding)
        if hasattr(got, "shape") and tuple(got.shape) != tuple(expected.shape):
            raise Mismatch(
                f"{what}: expected columns (N, C*kh*kw, L) = {tuple(expected.shape)}; got {tuple(got.shape)}"
            )
        slips = im2col_slips(x, kh, kw, stride, padding)
        expect_array(got, expected, what=what, atol=1e-12, slips=slips)
    return f"matches F.unfold on {len(CASES)} cases"


@exercise("conv2d-im2col", "conv2d_im2col", rules_out=("convolution",))
def check_conv2d_im2col(conv2d_im2col) -> str:
    return _check_conv(conv2d_im2col, "conv2d_im2col")


#: Hidden kernels of the learn-kernel check: Sobel (vertical edges), a Laplacian and a 2 x 2
#: diagonal difference.
LEARN_KERNELS = [
    [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]],
    [[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
    [[1.0, 0.0], [0.0, -1.0]],
]


def least_squares_kernel(x, y, size: int) -> torch.Tensor:
    """The (size, size) kernel K minimising the squared error of ``F.conv2d(x, K)`` against y,
    for x (N, 1, H, W) and y (N, 1, H - size + 1, W - size + 1), solved exactly."""
    x, y = float64_tensor(x), float64_tensor(y)
    patches = F.unfold(x, size).transpose(1, 2).reshape(-1, size * size)  # one row per output
    return torch.linalg.lstsq(patches, y.reshape(-1, 1)).solution.view(size, size)


def learn_kernel_slips(x, y, size: int) -> dict[str, torch.Tensor]:
    """What the common mistakes in ``learn_kernel`` give: explanation -> (size, size)."""
    kernel = least_squares_kernel(x, y, size)
    return {
        "this is the kernel flipped in both axes: F.conv2d computes cross-correlation, so learn "
        "the kernel it slides as it is": kernel.flip(0, 1),
        "this is the kernel transposed: rows and columns are swapped": kernel.T,
        "the kernel is still all zeros: did the steps update it (optimiser.step(), or "
        "kernel -= lr * kernel.grad under torch.no_grad())?": torch.zeros(size, size),
    }


def _learn_inputs(kernel: torch.Tensor, seed: int, n: int = 4, side: int = 12):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, side, side, generator=g, dtype=torch.float64)
    return x, F.conv2d(x, kernel.view(1, 1, *kernel.shape))


@exercise("learn-kernel", "learn_kernel")
def check_learn_kernel(learn_kernel) -> str:
    for seed, values in enumerate(LEARN_KERNELS):
        kernel = torch.tensor(values, dtype=torch.float64)
        size = kernel.shape[0]
        x, y = _learn_inputs(kernel, seed)
        what = f"learn_kernel(x {tuple(x.shape)}, y {tuple(y.shape)}, size={size})"
        got = call(learn_kernel, "learn_kernel", x, y, size)
        expect_array(
            got, kernel, what=what, atol=1e-3, rtol=0, slips=learn_kernel_slips(x, y, size)
        )
    return f"recovers {len(LEARN_KERNELS)} hidden kernels (Sobel, Laplacian, 2 x 2) to within 0.001"
