"""Property tests: every solution in the source notebooks against torch / NumPy / SciPy over
random shapes, strides, paddings, dilations and channel counts, edge cases included."""

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils.checks.activations_3d import conv_shape, counted_macs
from course_utils.checks.alexnet import pca_expected, torch_lrn
from course_utils.checks.pooling import reference_circle_pool
from course_utils.checks.why_convolutions import measured_receptive_field
from course_utils.instructor import notebooks

PATHS = {p.name[:2]: p for p in notebooks.notebook_paths()}
NB01, NB02, NB03, NB04, NB05, NB07, NB08 = (
    notebooks.solution_namespace(PATHS[k]) for k in ("01", "02", "03", "04", "05", "07", "08")
)
FAST = settings(max_examples=40, deadline=None)


@st.composite
def conv1d_inputs(draw):
    n = draw(st.integers(1, 12))
    padding = draw(st.integers(0, 3))
    k = draw(st.integers(1, n + 2 * padding))  # up to a kernel as large as the padded input
    stride = draw(st.integers(1, k + 3))  # includes strides larger than the kernel
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    return rng.normal(size=n), rng.normal(size=k), stride, padding


def torch_conv1d(x, w, stride=1, padding=0):
    return (
        F.conv1d(
            torch.tensor(x).view(1, 1, -1),
            torch.tensor(w).view(1, 1, -1),
            stride=stride,
            padding=padding,
        )
        .flatten()
        .numpy()
    )


@FAST
@given(conv1d_inputs())
def test_convolve_matches_numpy(case):
    x, w, _, _ = case
    np.testing.assert_allclose(NB01["convolve"](x, w), np.convolve(x, w), atol=1e-9)


@FAST
@given(conv1d_inputs())
def test_conv_matrix_matches_conv1d(case):
    x, w, _, padding = case
    M = NB01["conv_matrix"](w, len(x), padding=padding)
    np.testing.assert_allclose(M @ x, torch_conv1d(x, w, padding=padding), atol=1e-9)


@FAST
@given(conv1d_inputs())
def test_conv1d_windows_matches_conv1d(case):
    x, w, stride, padding = case
    np.testing.assert_allclose(
        NB01["conv1d_windows"](x, w, stride, padding),
        torch_conv1d(x, w, stride, padding),
        atol=1e-9,
    )


@st.composite
def conv2d_inputs(draw):
    n, c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    padding = draw(st.integers(0, 2))
    kh, kw = draw(st.integers(1, h + 2 * padding)), draw(st.integers(1, w + 2 * padding))
    stride = draw(st.integers(1, 4))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x = torch.randn(n, c_in, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(c_out, c_in, kh, kw, generator=g, dtype=torch.float64)
    bias = torch.randn(c_out, generator=g, dtype=torch.float64) if draw(st.booleans()) else None
    return x, weight, bias, stride, padding


@FAST
@given(conv2d_inputs())
def test_conv2d_naive_and_im2col_match_conv2d(case):
    x, weight, bias, stride, padding = case
    expected = F.conv2d(x, weight, bias, stride=stride, padding=padding)
    torch.testing.assert_close(NB02["conv2d_naive"](x, weight, bias, stride, padding), expected)
    torch.testing.assert_close(NB02["conv2d_im2col"](x, weight, bias, stride, padding), expected)
    kh, kw = weight.shape[-2:]
    torch.testing.assert_close(
        NB02["im2col"](x, kh, kw, stride, padding),
        F.unfold(x, (kh, kw), stride=stride, padding=padding),
    )


layer = st.tuples(st.integers(1, 7), st.integers(1, 3), st.integers(1, 3))


@FAST
@given(st.lists(layer, min_size=1, max_size=4))
def test_receptive_field_matches_gradients(layers):
    assert NB03["receptive_field"](layers) == measured_receptive_field(layers)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 40), st.integers(1, 9), st.integers(1, 5), st.integers(0, 4), st.integers(1, 4)
)
def test_conv_output_size_matches_conv2d(w_in, k, s, p, d):
    if w_in + 2 * p >= d * (k - 1) + 1:
        assert NB04["conv_output_size"](w_in, k, s, p, d) == conv_shape(w_in, k, s, p, d)


@FAST
@given(
    st.integers(1, 30),
    st.integers(1, 30),
    st.integers(1, 64),
    st.integers(1, 64),
    st.integers(1, 7),
)
def test_conv_flops_matches_flop_counter(h, w, c_in, c_out, k):
    assert NB04["conv_flops"](h, w, c_in, c_out, k) == counted_macs(h, w, c_in, c_out, k)


@st.composite
def pool_inputs(draw):
    k = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 5))
    h, w = draw(st.integers(k, 10)), draw(st.integers(k, 10))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    return (
        torch.randn(
            draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w, generator=g, dtype=torch.float64
        ),
        k,
        stride,
    )


@FAST
@given(pool_inputs())
def test_maxpool_forward_and_backward_match_autograd(case):
    x, k, stride = case
    out, argmax = NB05["maxpool2d_forward"](x, k, stride)
    expected, indices = F.max_pool2d(x, k, stride, return_indices=True)
    torch.testing.assert_close(out, expected)
    assert torch.equal(argmax, indices)
    leaf = x.clone().requires_grad_()
    dout = torch.randn_like(expected)
    F.max_pool2d(leaf, k, stride).backward(dout)
    torch.testing.assert_close(NB05["maxpool2d_backward"](dout, indices, tuple(x.shape)), leaf.grad)


@FAST
@given(pool_inputs(), st.floats(0, 4))
def test_circle_pool_matches_scipy(case, radius):
    x, _, _ = case
    np.testing.assert_allclose(
        NB05["circle_pool"](x, radius).numpy(), reference_circle_pool(x.numpy(), radius)
    )


@FAST
@given(
    st.integers(1, 3),
    st.integers(1, 12),
    st.integers(1, 4),
    st.sampled_from([1, 3, 5, 7, 9]),
    st.floats(0.5, 3),
    st.floats(1e-4, 2),
    st.floats(0.25, 1.5),
    st.integers(0, 2**16),
)
def test_lrn_matches_torch_for_odd_windows(n, channels, side, window, k, alpha, beta, seed):
    a = torch.randn(
        n, channels, side, side, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    got = NB07["local_response_norm"](a, n=window, k=k, alpha=alpha, beta=beta)
    torch.testing.assert_close(got, torch_lrn(a, window, k, alpha, beta))


@FAST
@given(st.integers(1, 5), st.integers(2, 6), st.integers(0, 2**16))
def test_pca_colour_shift_matches_scikit_learn(n, side, seed):
    rng = np.random.default_rng(seed)
    images = 0.5 + 0.1 * (rng.normal(size=(n, side, side, 3)) @ rng.normal(size=(3, 3))).transpose(
        0, 3, 1, 2
    )
    alphas = rng.normal(scale=0.1, size=(n, 3))
    got = NB08["pca_colour_shift"](torch.tensor(images), torch.tensor(alphas))
    np.testing.assert_allclose(got.numpy(), pca_expected(images, alphas), atol=1e-10)
