"""Public checks for notebook 07 (AlexNet): LRN against ``nn.LocalResponseNorm``, PCA colour
augmentation against scikit-learn's PCA."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from course_utils.checks import Mismatch, as_array, call, exercise, expect_array

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


@exercise("lrn", "local_response_norm")
def check_lrn(local_response_norm) -> str:
    for seed, (shape, n, k, alpha, beta) in enumerate(LRN_CASES):
        a = 2 * torch.randn(
            *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
        what = f"local_response_norm(a {shape}, n={n}, k={k}, alpha={alpha}, beta={beta})"
        got = call(local_response_norm, "local_response_norm", a, n=n, k=k, alpha=alpha, beta=beta)
        averaged = nn.LocalResponseNorm(n, alpha=alpha, beta=beta, k=k)(a)
        if (
            hasattr(got, "shape")
            and tuple(got.shape) == shape
            and np.allclose(as_array(got, what, shape), averaged)
        ):
            raise Mismatch(
                f"{what}: this is nn.LocalResponseNorm with the same alpha, which averages the "
                "squares; the paper's formula sums them (alpha times the sum)"
            )
        expect_array(got, torch_lrn(a, n, k, alpha, beta), what=what, atol=1e-9, rtol=1e-7)
    return f"matches nn.LocalResponseNorm(n, alpha * n, beta, k) on {len(LRN_CASES)} cases"


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
        expect_array(got, pca_expected(images, alphas), what=what, atol=1e-9, rtol=1e-7)
    zero = call(pca_colour_shift, "pca_colour_shift", x, torch.zeros_like(a))
    expect_array(zero, images, what="pca_colour_shift(images, alphas = 0) (no shift at all)")
    return "eigenvalues, eigenvectors (sign convention included) and shifts match scikit-learn's PCA on 3 batches"
