"""Public checks for notebooks 07 and 08 (AlexNet, training AlexNet): LRN against ``nn.LocalResponseNorm``, PCA colour
augmentation against scikit-learn's PCA, a grouped convolution's parameters against
``nn.Conv2d``."""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.checks import Mismatch, call, exercise
from course_utils.checks.compare import (
    as_array,
    expect_array,
    expect_counts,
    float64_tensor,
)

#: (shape, n, k, alpha, beta): the paper's values, a window wider than the channels, strong ones.
LRN_CASES = [
    ((2, 7, 4, 4), 5, 2.0, 1e-4, 0.75),
    ((1, 3, 2, 3), 5, 2.0, 1e-4, 0.75),
    ((2, 6, 3, 3), 3, 1.0, 1.0, 0.5),
    ((1, 9, 2, 2), 7, 0.5, 0.1, 1.0),
]


def torch_lrn(a: torch.Tensor, n: int, k: float, alpha: float, beta: float) -> torch.Tensor:
    """The paper's LRN of ``a`` (N, C, H, W) through ``models.paper_lrn``."""
    from course_utils.models import paper_lrn

    return paper_lrn(n, alpha=alpha, beta=beta, k=k)(a)


def _lrn_wrapped_window(a: torch.Tensor, n: int, k: float, alpha: float, beta: float):
    """LRN of ``a`` (N, C, H, W) whose window of channels ``i - n // 2 .. i + n // 2`` wraps
    around past the first and last channel (indices modulo C)."""
    squares = sum(torch.roll(a**2, -d, dims=1) for d in range(-(n // 2), n // 2 + 1))
    return a / (k + alpha * squares) ** beta


def _lrn_forward_window(a: torch.Tensor, n: int, k: float, alpha: float, beta: float):
    """LRN of ``a`` (N, C, H, W) whose window runs from channel ``i`` to ``i + n - 1`` (cut at the
    last one)."""
    squares = F.pad(a**2, (0, 0, 0, 0, 0, n - 1)).unfold(1, n, 1).sum(-1)
    return a / (k + alpha * squares) ** beta


def lrn_slips(a, n: int, k: float, alpha: float, beta: float) -> dict[str, torch.Tensor]:
    """What the common mistakes in ``local_response_norm`` give for a (N, C, H, W):
    explanation -> (N, C, H, W)."""
    a = float64_tensor(a)
    return {
        "this is nn.LocalResponseNorm with the same alpha, which averages the squares; the "
        "paper's formula sums them (alpha times the sum)": nn.LocalResponseNorm(
            n, alpha=alpha, beta=beta, k=k
        )(a),
        "the window wraps around from the last channel to the first; it should stop at the "
        "first and last channels (max(0, i - n // 2) to min(C - 1, i + n // 2))": (
            _lrn_wrapped_window(a, n, k, alpha, beta)
        ),
        "the window runs from channel i to i + n - 1; it should be centred on i (from "
        "i - n // 2 to i + n // 2)": _lrn_forward_window(a, n, k, alpha, beta),
    }


@exercise("lrn", "local_response_norm")
def check_lrn(local_response_norm) -> str:
    for seed, (shape, n, k, alpha, beta) in enumerate(LRN_CASES):
        a = 2 * torch.randn(
            *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
        what = f"local_response_norm(a {shape}, n={n}, k={k}, alpha={alpha}, beta={beta})"
        got = call(local_response_norm, "local_response_norm", a, n=n, k=k, alpha=alpha, beta=beta)
        slips = lrn_slips(a, n, k, alpha, beta)
        expected = torch_lrn(a, n, k, alpha, beta)
        expect_array(got, expected, what=what, atol=1e-9, rtol=1e-7, slips=slips)
    return (
        f"matches nn.LocalResponseNorm(n, alpha * n, beta, k) on {len(LRN_CASES)} cases (odd n, "
        "as the exercise takes: the window is centred on channel i)"
    )


def pca_expected(images, alphas) -> np.ndarray:
    """The expected shifted images, from scikit-learn's PCA of the batch's RGB pixels.

    scikit-learn centres the pixels, divides the covariance by the count minus one and orders the
    components by variance. Their signs follow the exercise's convention (each component's
    largest-magnitude entry positive), set here: scikit-learn's own ``svd_flip`` picked signs
    from the other side of the SVD before version 1.5.
    """
    from sklearn.decomposition import PCA

    images, alphas = np.asarray(images, dtype=np.float64), np.asarray(alphas, dtype=np.float64)
    pca = PCA(n_components=3, svd_solver="full").fit(images.transpose(0, 2, 3, 1).reshape(-1, 3))
    components = pca.components_  # (3, 3), one direction per row
    largest = np.abs(components).argmax(axis=1)
    components = components * np.sign(components[np.arange(3), largest])[:, None]
    colours = (alphas * pca.explained_variance_) @ components  # (N, 3), one per image
    return images + colours.reshape(len(images), 3, 1, 1)


#: The usual slips in the PCA exercise, each named with its fix, as :func:`pca_slips` finds them.
PCA_SLIPS = {
    "ascending": "the eigenvalues and eigenvectors are in torch.linalg.eigh's ascending order "
    "(flip both, so that lambda_1 is the largest)",
    "rows": "the eigenvectors are read as rows (torch.linalg.eigh returns them as columns: "
    "vectors[:, i])",
    "sqrt": "alpha_i scales sqrt(lambda_i) (the paper's formula scales lambda_i itself)",
    "signs": "an eigenvector's sign breaks the convention (make its largest-magnitude "
    "component positive)",
    "layout": "the pixels were read as images.reshape(-1, 3), which mixes channels and "
    "positions: move the channels last first (images.permute(0, 2, 3, 1).reshape(-1, 3))",
}


def pca_slips(images: np.ndarray, alphas: np.ndarray, got: np.ndarray) -> list[str]:
    """The keys of :data:`PCA_SLIPS` whose combination turns the right shift of ``images``
    (N, 3, H, W) by ``alphas`` (N, 3) into ``got``; empty when none does. Eigenvectors read as
    rows are tried with any signs, and then their signs go unmentioned."""
    flips = [np.array(signs) for signs in itertools.product((1, -1), repeat=3)]
    for layout, ascending, rows, sqrt in itertools.product((False, True), repeat=4):
        pixels = images.reshape(-1, 3) if layout else images.transpose(0, 2, 3, 1).reshape(-1, 3)
        ascending_values, ascending_vectors = np.linalg.eigh(np.cov(pixels.T))  # columns
        values = ascending_values if ascending else ascending_values[::-1]
        vectors = ascending_vectors if ascending else ascending_vectors[:, ::-1]
        vectors = vectors * np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(3)])
        scales = alphas * (np.sqrt(values) if sqrt else values)
        for row_signs, column_signs in itertools.product(flips if rows else flips[:1], flips):
            used = row_signs[:, None] * vectors * column_signs  # columns: the p_i as used
            shift = scales @ (used if rows else used.T)
            if np.allclose(images + shift[:, :, None, None], got, rtol=1e-6, atol=1e-9):
                signs = not rows and bool((column_signs < 0).any())
                made = dict(ascending=ascending, rows=rows, sqrt=sqrt, signs=signs, layout=layout)
                return [key for key in PCA_SLIPS if made[key]]
    return []


def pca_single_slips(images, alphas) -> dict[str, np.ndarray]:
    """What each slip of :data:`PCA_SLIPS` alone (signs by the convention) gives, for grading:
    explanation -> (N, 3, H, W)."""
    images, alphas = np.asarray(images, dtype=np.float64), np.asarray(alphas, dtype=np.float64)
    slips = {}
    for key in ("ascending", "rows", "sqrt", "layout"):
        layout = key == "layout"
        pixels = images.reshape(-1, 3) if layout else images.transpose(0, 2, 3, 1).reshape(-1, 3)
        values, vectors = np.linalg.eigh(np.cov(pixels.T))
        if key != "ascending":
            values, vectors = values[::-1], vectors[:, ::-1]
        vectors = vectors * np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(3)])
        scales = alphas * (np.sqrt(values) if key == "sqrt" else values)
        shift = scales @ (vectors if key == "rows" else vectors.T)
        slips[PCA_SLIPS[key]] = images + shift[:, :, None, None]
    return slips


@exercise("pca-colour", "pca_colour_shift")
def check_pca_colour(pca_colour_shift) -> str:
    rng = np.random.default_rng(0)
    for n, size in ((4, 5), (2, 8), (6, 3)):
        mix = rng.normal(size=(3, 3))
        images = (rng.normal(size=(n, size, size, 3)) @ mix).transpose(0, 3, 1, 2) * 0.1 + 0.5
        alphas = rng.normal(scale=0.1, size=(n, 3))
        x, a = torch.as_tensor(images), torch.as_tensor(alphas)
        what = f"pca_colour_shift(images {tuple(images.shape)}, alphas {alphas.shape})"
        got = call(pca_colour_shift, "pca_colour_shift", x, a)
        try:
            expect_array(got, pca_expected(images, alphas), what=what, atol=1e-9, rtol=1e-7)
        except Mismatch:
            array = as_array(got, what, images.shape)
            slips = pca_slips(images, alphas, array) if array.shape == images.shape else []
            if not slips:
                raise
            named = "; and ".join(PCA_SLIPS[key] for key in slips)
            raise Mismatch(f"{what}: off because {named}") from None
    zero = call(pca_colour_shift, "pca_colour_shift", x, torch.zeros_like(a))
    expect_array(zero, images, what="pca_colour_shift(images, alphas = 0) (no shift at all)")
    return "eigenvalues, eigenvectors (sign convention included) and shifts match scikit-learn's PCA on 3 batches"


def grouped_parameters(c_in: int, c_out: int, k: int, groups: int, bias: bool = True) -> int:
    """Parameters of a real ``nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)``, counted
    on the meta device."""
    with torch.device("meta"):
        layer = nn.Conv2d(c_in, c_out, k, groups=groups, bias=bias)
    return sum(p.numel() for p in layer.parameters())


def grouped_slips(c_in: int, c_out: int, k: int, groups: int, bias: bool = True) -> dict:
    """What the common slips in ``grouped_conv_parameters`` give: explanation -> count."""
    b = c_out if bias else 0
    return {
        "the groups are ignored: each kernel sees only c_in / groups input channels": (
            c_out * c_in * k * k + b
        ),
        "the outputs are divided by the groups too: there are still c_out kernels in all, each "
        "over c_in / groups channels": (c_out // groups) * (c_in // groups) * k * k + b,
        "the bias is missing: each of the c_out kernels has one (when bias=True)": (
            c_out * (c_in // groups) * k * k
        ),
        "one bias per group; each of the c_out kernels has its own": (
            c_out * (c_in // groups) * k * k + (groups if bias else 0)
        ),
    }


#: (c_in, c_out, k, groups, bias): AlexNet's conv2, conv4 and conv5, a plain layer, a
#: depthwise one, four groups, no bias.
GROUPED_CASES = [
    (96, 256, 5, 2, True),
    (384, 384, 3, 2, True),
    (384, 256, 3, 2, True),
    (3, 96, 11, 1, True),
    (32, 32, 3, 32, True),
    (64, 128, 1, 4, False),
]


@exercise("grouped-params", "grouped_conv_parameters")
def check_grouped_params(grouped_conv_parameters) -> str:
    expect_counts(
        grouped_conv_parameters,
        "grouped_conv_parameters",
        GROUPED_CASES,
        grouped_parameters,
        grouped_slips,
        what=lambda case: (
            "grouped_conv_parameters(c_in={}, c_out={}, k={}, groups={}, bias={})".format(*case)
        ),
        reference=lambda count: f"nn.Conv2d has {count:,}",
    )
    return f"equals nn.Conv2d's parameter count on {len(GROUPED_CASES)} layers, depthwise included"
