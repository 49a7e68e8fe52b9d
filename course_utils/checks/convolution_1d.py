"""Public checks for notebook 01 (convolution in 1D).

Every expected value comes from ``np.convolve`` / ``np.correlate`` or
``torch.nn.functional.conv1d`` on the same inputs.
"""

from __future__ import annotations

import numpy as np

from course_utils.checks import call, describe_call, exercise
from course_utils.checks.compare import expect_array


def torch_conv1d(x: np.ndarray, w: np.ndarray, *, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Cross-correlation as deep-learning libraries compute it. ``x``: (n,), ``w``: (k,) -> (n_out,)."""
    import torch
    import torch.nn.functional as F

    xt = torch.tensor(np.array(x, dtype=np.float64)).reshape(1, 1, -1)
    wt = torch.tensor(np.array(w, dtype=np.float64)).reshape(1, 1, -1)
    return F.conv1d(xt, wt, stride=stride, padding=padding).reshape(-1).numpy()


#: A result equal to the flipped kernel's: true convolution where cross-correlation is asked for.
FLIPPED = (
    "this is true convolution (the kernel flipped); deep-learning libraries' convolution, asked "
    "for here, is cross-correlation: slide the kernel without flipping it"
)


CORRELATED = (
    "this is np.correlate(x, w, 'full'): convolution flips the kernel before sliding it "
    "(w[::-1]), which is what makes it commutative"
)


def convolve_slips(x: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """What the common mistake in ``convolve(x, w)`` gives: explanation -> (n + k - 1,)."""
    return {CORRELATED: np.correlate(x, w, "full")}


def conv_matrix_reference(w: np.ndarray, n: int, padding: int = 0) -> np.ndarray:
    """The matrix of ``F.conv1d`` with kernel ``w`` on length-``n`` signals, built column by
    column from the unit vectors: (n + 2 * padding - k + 1, n)."""
    return np.stack([torch_conv1d(e, w, padding=padding) for e in np.eye(n)], axis=1)


def conv_matrix_slips(w: np.ndarray, n: int, padding: int = 0) -> dict[str, np.ndarray]:
    """What the common mistakes in ``conv_matrix(w, n, padding)`` give: the flipped kernel's
    matrix, and the band not shifted by the padding."""
    w = np.asarray(w, dtype=np.float64)
    unshifted = np.zeros((n + 2 * padding - len(w) + 1, n))
    for i in range(len(unshifted)):
        for m, value in enumerate(w):
            if i + m < n:
                unshifted[i, i + m] = value
    return {
        FLIPPED: conv_matrix_reference(w[::-1], n, padding),
        "the padding is ignored: row i starts at input position i - padding, so the band "
        "shifts left by the padding (entries that fall outside the signal are dropped)": unshifted,
    }


def conv1d_slips(
    x: np.ndarray, w: np.ndarray, stride: int = 1, padding: int = 0
) -> dict[str, np.ndarray]:
    """What the common mistakes in ``conv1d_windows`` give: the flipped kernel's output, and
    windows that do not move by the stride."""
    n_out = (len(x) + 2 * padding - len(w)) // stride + 1
    return {
        FLIPPED: torch_conv1d(x, np.asarray(w)[::-1], stride=stride, padding=padding),
        "the stride is ignored: window i starts at position i * stride": torch_conv1d(
            x, w, padding=padding
        )[:n_out],
    }


def _cases(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Signals and kernels of assorted lengths: toy integers, kernel as long as the signal, k=1."""
    return [
        (np.arange(1.0, 7.0), np.array([1.0, 2.0, 3.0])),
        (rng.normal(size=9), rng.normal(size=4)),
        (rng.normal(size=5), rng.normal(size=5)),
        (rng.normal(size=6), np.array([2.5])),
        (rng.normal(size=3), rng.normal(size=5)),  # kernel longer than the signal
    ]


@exercise("convolve-full", "convolve", rules_out=("numpy-convolution",))
def check_convolve(convolve) -> str:
    """``convolve(x, w)``: true convolution, full output of length ``n + k - 1``."""
    rng = np.random.default_rng(1)
    for x, w in _cases(rng):
        what = f"convolve({describe_call((x, w), {})})"
        expected = np.convolve(x, w)
        got = call(convolve, "convolve", x, w)
        expect_array(got, expected, what=what, slips=convolve_slips(x, w))
    return "matches np.convolve on 5 signal/kernel pairs (one kernel longer than its signal)"


@exercise("conv-matrix", "conv_matrix")
def check_conv_matrix(conv_matrix) -> str:
    """``conv_matrix(w, n, padding)``: the (n + 2p - k + 1, n) matrix with ``M @ x == conv1d(x, w)``."""
    rng = np.random.default_rng(2)
    tried = 0
    for x, w in _cases(rng):
        n, k = x.size, w.size
        for padding in (0, 1, 2):
            if n + 2 * padding < k:
                continue
            what = f"conv_matrix({describe_call((w, n), {'padding': padding})})"
            expected = conv_matrix_reference(w, n, padding)
            got = call(conv_matrix, "conv_matrix", w, n, padding=padding)
            expect_array(got, expected, what=what, slips=conv_matrix_slips(w, n, padding))
            product = np.asarray(got, dtype=np.float64) @ x
            expect_array(product, torch_conv1d(x, w, padding=padding), what=f"{what} @ x")
            tried += 1
    return f"M @ x equals F.conv1d(x, w, padding=p) for {tried} (w, n, padding) combinations"


@exercise("conv1d-windows", "conv1d_windows")
def check_conv1d_windows(conv1d_windows) -> str:
    """``conv1d_windows(x, w, stride, padding)``: window matrix times kernel, like ``F.conv1d``."""
    rng = np.random.default_rng(3)
    tried = 0
    for x, w in _cases(rng):
        n, k = x.size, w.size
        for stride, padding in ((1, 0), (2, 0), (1, 1), (2, 2), (3, 1), (k + 1, 0)):
            if n + 2 * padding < k:
                continue
            kwargs = {"stride": stride, "padding": padding}
            what = f"conv1d_windows({describe_call((x, w), kwargs)})"
            expected = torch_conv1d(x, w, stride=stride, padding=padding)
            got = call(conv1d_windows, "conv1d_windows", x, w, **kwargs)
            expect_array(got, expected, what=what, slips=conv1d_slips(x, w, stride, padding))
            tried += 1
    return f"matches F.conv1d for {tried} signal/kernel/stride/padding combinations"
