"""check() and the public checks of notebook 01: every status and every kind of wrong answer."""

import allowed_ops
import numpy as np
import pytest
import torch.nn as nn

from course_utils import checks
from course_utils.checks import FAILED, NOT_ATTEMPTED, PASSED, CheckFailed, compare, run_check


def good_convolve(x, w):
    return allowed_ops.convolve(x, w)


def good_conv_matrix(w, n, padding=0):
    k = len(w)
    M = np.zeros((n + 2 * padding - k + 1, n))
    for i in range(M.shape[0]):
        for m in range(k):
            if 0 <= i + m - padding < n:
                M[i, i + m - padding] = w[m]
    return M


def good_windows(x, w, stride=1, padding=0):
    x = np.pad(np.asarray(x, float), padding)
    starts = range(0, len(x) - len(w) + 1, stride)
    return np.stack([x[s : s + len(w)] for s in starts]) @ np.asarray(w, float)


def stub(*args, **kwargs):
    raise NotImplementedError("replace this line with your code")


GOOD = {
    "convolve-full": ("convolve", good_convolve),
    "conv-matrix": ("conv_matrix", good_conv_matrix),
    "conv1d-windows": ("conv1d_windows", good_windows),
}


@pytest.mark.parametrize("exercise_id", sorted(GOOD))
def test_correct_answers_pass(exercise_id):
    name, fn = GOOD[exercise_id]
    result = run_check(exercise_id, {name: fn})
    assert result.status == PASSED, result.line()
    assert result.line().startswith("✅")


@pytest.mark.parametrize("exercise_id", sorted(GOOD))
def test_stub_is_not_attempted(exercise_id):
    name, _ = GOOD[exercise_id]
    result = run_check(exercise_id, {name: stub})
    assert result.status == NOT_ATTEMPTED
    assert result.line().startswith("⏳") and "NotImplementedError" in result.line()


@pytest.mark.parametrize(
    ("exercise_id", "wrong", "needle"),
    [
        # cross-correlation instead of convolution: the classic flip mistake
        (
            "convolve-full",
            lambda x, w: allowed_ops.convolve(x, w[::-1]),
            "2., 3.]): this is np.correlate(x, w, 'full'): convolution flips the kernel",
        ),
        # valid part only: right values, wrong length
        (
            "convolve-full",
            lambda x, w: allowed_ops.convolve(x, w)[len(w) - 1 : len(x)],
            "expected shape (8,), got (4,)",
        ),
        # ignores padding
        (
            "conv-matrix",
            lambda w, n, padding=0: good_conv_matrix(w, n),
            "padding=1): expected shape (6, 6), got (4, 6)",
        ),
        # true convolution where the library's cross-correlation is expected
        (
            "conv-matrix",
            lambda w, n, padding=0: good_conv_matrix(np.asarray(w)[::-1], n, padding),
            "padding=0): this is true convolution (the kernel flipped)",
        ),
        (
            "conv1d-windows",
            lambda x, w, stride=1, padding=0: good_windows(x, np.asarray(w)[::-1], stride, padding),
            "padding=0): this is true convolution (the kernel flipped)",
        ),
        # a numeric mismatch that is none of the known slips keeps its numbers
        (
            "conv1d-windows",
            lambda x, w, stride=1, padding=0: good_windows(x, w, stride, padding) + 0.5,
            "(off by 0.5 at (0,), allowed 0.00014)",
        ),
        # ignores stride
        (
            "conv1d-windows",
            lambda x, w, stride=1, padding=0: good_windows(x, w, 1, padding),
            "stride=2",
        ),
        # a ragged list instead of an array
        (
            "conv1d-windows",
            lambda x, w, stride=1, padding=0: [[1.0], [2.0, 3.0]],
            "expected a NumPy array (or torch tensor) of shape (4,); got list",
        ),
        # integer output truncates
        (
            "conv-matrix",
            lambda w, n, padding=0: good_conv_matrix(w, n, padding).astype(int),
            "got integer dtype int64",
        ),
        # forgets to return
        ("convolve-full", lambda x, w: None, "returned None: does `convolve` end with `return"),
        # crashes inside the student's code
        ("convolve-full", lambda x, w: x[len(x) + 5], "raised IndexError"),
    ],
)
def test_wrong_answers_fail_with_one_informative_line(exercise_id, wrong, needle):
    name, _ = GOOD[exercise_id]
    result = run_check(exercise_id, {name: wrong})
    assert result.status == FAILED
    line = result.line()
    assert line.startswith("❌") and "\n" not in line
    assert needle in line, line


def _wrong_returns():
    import torch

    return {
        "None": None,
        "a string": "42",
        "a float": -7.5,
        "NaN": float("nan"),
        "infinity": float("inf"),
        "a long list": list(range(1000)),
        "a 2x2 array": np.zeros((2, 2)),
        "a 4-D array": np.zeros((2, 3, 4, 5)),
        "a NaN array": np.full((3, 3), np.nan),
        "a boolean array": np.ones(3, bool),
        "a complex array": np.zeros(3, complex),
        "a tensor that needs grad": torch.ones(2, requires_grad=True),
        "a bfloat16 tensor": torch.zeros(3, 3, dtype=torch.bfloat16),
        "a module": torch.nn.Linear(2, 2),
        "a tuple of arrays": (np.zeros(2), np.zeros(2)),
    }


@pytest.mark.parametrize("exercise_id", sorted(checks.registry()))
def test_any_wrong_kind_of_answer_gives_one_failure_line_never_a_traceback(exercise_id):
    """Whatever a student's function returns, the check prints ❌ with what came back."""
    names = checks.registry()[exercise_id].names
    for label, value in _wrong_returns().items():
        namespace = {name: (lambda *args, _value=value, **kwargs: _value) for name in names}
        result = run_check(exercise_id, namespace)
        line = result.line()
        assert result.status == FAILED, (label, line)
        assert "\n" not in line and len(line) < 400, (label, line)


def test_torch_tensors_are_accepted():
    import torch

    result = run_check(
        "convolve-full", {"convolve": lambda x, w: torch.tensor(allowed_ops.convolve(x, w))}
    )
    assert result.status == PASSED


def test_wrong_kind_and_missing_name():
    assert "should be a function; got int" in run_check("conv-matrix", {"conv_matrix": 3}).message
    missing = run_check("conv-matrix", {})
    assert missing.status == FAILED and "`conv_matrix` is not defined" in missing.message


def test_integer_dtype_is_named():
    result = run_check(
        "convolve-full", {"convolve": lambda x, w: allowed_ops.convolve(x, w).astype(np.int64)}
    )
    assert result.status == FAILED
    assert "expected floating-point values, got integer dtype int64" in result.message


def test_nan_is_reported():
    result = run_check(
        "convolve-full", {"convolve": lambda x, w: np.full(len(x) + len(w) - 1, np.nan)}
    )
    assert "NaN" in result.message


def test_unknown_exercise_lists_known_ids():
    with pytest.raises(KeyError, match="conv-matrix"):
        run_check("no-such-exercise", {})


def test_check_prints_in_student_mode_and_raises_in_strict_mode(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_CHECK_STRICT", "0")
    checks.check("convolve-full", {"convolve": stub})
    assert capsys.readouterr().out.startswith("⏳ convolve-full")
    monkeypatch.setenv("COURSE_CHECK_STRICT", "1")
    with pytest.raises(CheckFailed, match="convolve-full"):
        checks.check("convolve-full", {"convolve": lambda x, w: np.zeros(3)})
    assert capsys.readouterr().out.startswith("❌")


def test_package_level_check_reads_the_callers_globals(monkeypatch, capsys):
    import course_utils

    monkeypatch.setenv("COURSE_CHECK_STRICT", "0")
    namespace = {"convolve": good_convolve, "course_utils": course_utils}
    exec("course_utils.check('convolve-full')", namespace)
    assert capsys.readouterr().out.startswith("✅ convolve-full")


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        checks.exercise("conv-matrix", "x")(lambda x: "")


# ---- notebooks 02-05: wrong answers produce one precise line ------------------------------

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from course_utils.checks.pooling import reference_circle_pool  # noqa: E402
from course_utils.instructor import notebooks as _notebooks  # noqa: E402
from course_utils.instructor.grading.hidden import hidden_tests  # noqa: E402

SOLVED = {p.name[:2]: _notebooks.solution_namespace(p) for p in _notebooks.notebook_paths()}


@pytest.mark.parametrize(
    ("exercise_id", "name", "wrong", "needle"),
    [
        (
            "conv2d-naive",
            "conv2d_naive",
            lambda x, w, b=None, stride=1, padding=0: allowed_ops.conv2d(x, w, b, padding=padding),
            "expected output (2, 3, 5, 5) for stride 2, padding 1; got (2, 3, 9, 10)",
        ),
        (
            "conv2d-im2col",
            "conv2d_im2col",
            lambda x, w, b=None, stride=1, padding=0: allowed_ops.conv2d(
                x, w, None, stride, padding
            ),
            "padding 0): the bias is missing: add bias[o] to every value of output channel o",
        ),
        (
            "conv2d-naive",
            "conv2d_naive",
            lambda x, w, b=None, stride=1, padding=0: allowed_ops.conv2d(
                x, w.flip(-2, -1), b, stride, padding
            ),
            "padding 0): this is true convolution (the kernel flipped)",
        ),
        (
            "im2col",
            "im2col",
            # rows ordered (kernel position, channel) instead of F.unfold's (channel, position)
            lambda x, kh, kw, stride=1, padding=0: (
                allowed_ops.unfold(x, kh, kw, stride=stride, padding=padding)
                .view(x.shape[0], x.shape[1], kh * kw, -1)
                .transpose(1, 2)
                .reshape(x.shape[0], x.shape[1] * kh * kw, -1)
            ),
            "padding=1): the rows are ordered kernel position first, then channel",
        ),
        (
            "im2col",
            "im2col",
            # windows listed column by column
            lambda x, kh, kw, stride=1, padding=0: (
                allowed_ops.unfold(x, kh, kw, stride=stride, padding=padding)
                .view(
                    x.shape[0],
                    x.shape[1] * kh * kw,
                    (x.shape[2] + 2 * padding - kh) // stride + 1,
                    -1,
                )
                .transpose(2, 3)
                .reshape(x.shape[0], x.shape[1] * kh * kw, -1)
            ),
            "padding=0): the windows are listed column by column",
        ),
        (
            "maxpool-forward",
            "maxpool2d_forward",
            # the argmax's position inside its window, not in the input plane
            lambda x, kernel_size=2, stride=2: (
                allowed_ops.max_pool2d(x, kernel_size, stride),
                allowed_ops.max_pool2d(x, kernel_size, stride, True)[1] // x.shape[-1] % 2 * 2
                + allowed_ops.max_pool2d(x, kernel_size, stride, True)[1] % 2,
            ),
            "stride=2) argmax (flat index h * W + w into each input plane): argmax counts within",
        ),
        (
            "maxpool-backward",
            "maxpool2d_backward",
            # assigns where it should add: overlapping windows keep only one gradient
            lambda dout, argmax, shape: (
                dout.new_zeros(shape).flatten(2).scatter(2, argmax.flatten(2), dout.flatten(2))
            ).view(shape),
            "input_shape=(1, 2, 7, 7)): where windows overlap, one input can be the maximum",
        ),
        (
            "circle-pool",
            "circle_pool",
            lambda x, r: F.max_pool2d(x, 2 * int(r) + 1, stride=1, padding=int(r)),
            "circle_pool(x (1, 1, 5, 5), radius=1): this is the square window that holds the disk",
        ),
        (
            "circle-pool",
            "circle_pool",
            # zero padding: outside pixels win where the image is negative
            lambda x, r: torch.from_numpy(reference_circle_pool(x.numpy(), r, outside=0.0)),
            "radius=1): pixels outside the image count as 0 here",
        ),
        (
            "lrn",
            "local_response_norm",
            lambda a, n=5, k=2.0, alpha=1e-4, beta=0.75: (
                a
                / (
                    k
                    + alpha * sum(torch.roll(a**2, d, dims=1) for d in range(-(n // 2), n // 2 + 1))
                )
                ** beta
            ),
            "beta=0.75): the window wraps around from the last channel to the first",
        ),
        (
            "lrn",
            "local_response_norm",
            lambda a, n=5, k=2.0, alpha=1e-4, beta=0.75: (
                a
                / (
                    k
                    + alpha
                    * torch.stack([(a[:, i : i + n] ** 2).sum(1) for i in range(a.shape[1])], 1)
                )
                ** beta
            ),
            "beta=0.75): the window runs from channel i to i + n - 1",
        ),
        (
            "im2col",
            "im2col",
            lambda x, kh, kw, stride=1, padding=0: allowed_ops.unfold(x, kh, kw, stride=stride),
            "expected columns (N, C*kh*kw, L) = (2, 27, 42); got (2, 27, 20)",
        ),
        (
            "receptive-field",
            "receptive_field",
            lambda layers: sum(k for k, _, _ in layers),
            "receptive_field([(3, 1, 1), (3, 1, 1)]): expected 5, got 6",
        ),
        (
            "conv-output-size",
            "conv_output_size",
            lambda w, k, stride=1, padding=0, dilation=1: (w + 2 * padding - k) // stride,
            "nn.Conv2d gives 1, got 0 (off by one: remember the + 1, and the floor)",
        ),
        (
            "conv-output-size",
            "conv_output_size",
            lambda w, k, stride=1, padding=0, dilation=1: (w + 2 * padding - k) / stride + 1,
            "nn.Conv2d gives 1, got 1.6666666666666665 (a size is a whole number: take the floor",
        ),
        (
            "conv-output-size",
            "conv_output_size",
            lambda w, k, stride=1, padding=0, dilation=1: np.int64(w + 2 * padding - k),
            "dilation=1): nn.Conv2d gives 1, got 0 (off by one",
        ),
        (
            "conv-flops",
            "conv_flops",
            lambda h, w, ci, co, k: h * w * co * k * k,
            "conv_flops(28, 28, 192, 32, 5): torch's FLOP counter gives 120,422,400 multiply-adds, "
            "got 627200 (the input channels are missing",
        ),
        (
            "conv-flops",
            "conv_flops",
            lambda h, w, ci, co, k: 2 * h * w * ci * co * k * k,
            "got 240844800 (a multiply and an add are counted as two",
        ),
        (
            "conv-flops",
            "conv_flops",
            lambda h, w, ci, co, k: h * w * ci * co * k,
            "got 24084480 (the kernel is square",
        ),
        (
            "receptive-field",
            "receptive_field",
            # strides ignored
            lambda layers: 1 + sum((k - 1) * d for k, _, d in layers),
            "expected 11, got 9 (the strides are ignored",
        ),
        (
            "receptive-field",
            "receptive_field",
            # dilations ignored
            lambda layers: SOLVED["03"]["receptive_field"]([(k, s, 1) for k, s, _ in layers]),
            "expected 15, got 7 (the dilations are ignored",
        ),
        (
            "receptive-field",
            "receptive_field",
            # layers read top first: on one stack the same number as counting each own stride
            lambda layers: SOLVED["03"]["receptive_field"](layers[::-1]),
            "expected 11, got 13 (the layers are taken in reverse",
        ),
        (
            "receptive-field",
            "receptive_field",
            lambda layers: SOLVED["03"]["receptive_field"]([(k, s, d * s) for k, s, d in layers]),
            "expected 11, got 13 (each layer's own stride is counted in its step",
        ),
        (
            "maxpool-forward",
            "maxpool2d_forward",
            lambda x, kernel_size=2, stride=2: allowed_ops.max_pool2d(x, kernel_size, stride),
            "expected a tuple (out, argmax); got Tensor",
        ),
        (
            "maxpool-backward",
            "maxpool2d_backward",
            lambda dout, argmax, shape: (
                torch.zeros(shape, dtype=dout.dtype)
                .flatten(2)
                .scatter(2, argmax.flatten(2), dout.flatten(2))
                .view(shape)
            ),
            "maxpool2d_backward(dout (1, 2, 3, 3), argmax, input_shape=(1, 2, 7, 7))",
        ),
        (
            "circle-pool",
            "circle_pool",
            lambda x, r: F.max_pool2d(x, 2 * int(r) + 1, stride=1, padding=int(r)) if r >= 1 else x,
            "circle_pool(x (1, 1, 5, 5), radius=1)",
        ),
        (
            "lrn",
            "local_response_norm",
            # PyTorch's convention (alpha divided by n) instead of the paper's sum
            lambda a, n=5, k=2.0, alpha=1e-4, beta=0.75: torch.nn.functional.local_response_norm(
                a, n, alpha, beta, k
            ),
            "averages the squares; the paper's formula sums them",
        ),
        (
            "pca-colour",
            "pca_colour_shift",
            # eigh's ascending order kept: the largest shift goes along the smallest variance
            lambda images, alphas: (
                images
                + (
                    (
                        alphas
                        * torch.linalg.eigh(torch.cov(images.permute(0, 2, 3, 1).reshape(-1, 3).T))[
                            0
                        ]
                    )
                    @ torch.linalg.eigh(torch.cov(images.permute(0, 2, 3, 1).reshape(-1, 3).T))[1].T
                )[:, :, None, None]
            ),
            "(4, 3)): off because the eigenvalues and eigenvectors are in torch.linalg.eigh's "
            "ascending order",
        ),
    ],
)
def test_later_notebooks_explain_wrong_answers(exercise_id, name, wrong, needle):
    result = run_check(exercise_id, {name: wrong})
    assert result.status == FAILED and "\n" not in result.line()
    assert needle in result.message, result.message


@pytest.mark.parametrize(
    "exercise_id",
    [
        "conv2d-naive",
        "im2col",
        "conv2d-im2col",
        "receptive-field",
        "conv-output-size",
        "conv-flops",
        "maxpool-forward",
        "maxpool-backward",
        "circle-pool",
        "lrn",
        "pca-colour",
        "shift-images",
        "blur-downsample",
        "ascent-step",
    ],
)
def test_later_solutions_pass_and_stubs_wait(exercise_id):
    name = checks.registry()[exercise_id].names[0]
    solved = next(ns[name] for ns in SOLVED.values() if name in ns)
    assert run_check(exercise_id, {name: solved}).status == PASSED
    assert run_check(exercise_id, {name: stub}).status == NOT_ATTEMPTED


def test_lenet5_check_explains_structural_mistakes():
    import torch.nn as nn

    from course_utils.models import LeNet5

    def no_padding_fix(activation="tanh"):  # max pooling is allowed, but a 3x3 C1 is not LeNet-5
        return nn.Sequential(
            nn.Conv2d(1, 6, 3), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.LazyLinear(10)
        )

    result = run_check("lenet5", {"build_lenet5": no_padding_fix})
    assert (
        result.status == FAILED
        and "shapes after the conv and pooling layers should be" in result.message
    )
    cheat = run_check(
        "lenet5", {"build_lenet5": lambda activation="tanh": LeNet5(activation=activation)}
    )
    assert "not with course_utils.models.LeNet5" in cheat.message
    wrong_kind = run_check(
        "lenet5", {"build_lenet5": lambda activation="tanh": [nn.Conv2d(1, 6, 5)]}
    )
    assert "expected an nn.Module (an nn.Sequential); got list" in wrong_kind.message
    solved = SOLVED["06"]["build_lenet5"]
    assert run_check("lenet5", {"build_lenet5": solved}).status == PASSED

    def always_tanh(activation="tanh"):
        return solved("tanh")

    assert (
        "expected 4 ReLU activations" in run_check("lenet5", {"build_lenet5": always_tanh}).message
    )


def _pca_with(*, descending=True, convention=True, sqrt=False, rows=False, centred=True):
    """The PCA exercise's solution with some of its steps left out or done wrongly."""
    import torch

    def pca_colour_shift(images, alphas):
        pixels = images.permute(0, 2, 3, 1).reshape(-1, 3)
        covariance = torch.cov(pixels.T) if centred else pixels.T @ pixels / (len(pixels) - 1)
        values, vectors = torch.linalg.eigh(covariance)
        if descending:
            values, vectors = values.flip(0), vectors.flip(1)
        if convention:
            vectors = vectors * torch.sign(vectors[vectors.abs().argmax(dim=0), torch.arange(3)])
        values = values.sqrt() if sqrt else values
        shift = (alphas * values) @ (vectors if rows else vectors.T)
        return images + shift[:, :, None, None]

    return pca_colour_shift


@pytest.mark.parametrize(
    "slips, named",
    [
        ({"convention": False}, ["signs"]),
        ({"sqrt": True}, ["sqrt"]),
        ({"rows": True}, ["rows"]),
        ({"rows": True, "convention": False}, ["rows"]),  # signs are moot for the wrong vectors
        ({"descending": False, "convention": False}, ["ascending", "signs"]),
        ({"descending": False, "sqrt": True, "rows": True}, ["ascending", "rows", "sqrt"]),
        ({"centred": False}, []),  # not a slip it knows: the numbers are reported instead
    ],
)
def test_pca_check_names_each_slip_and_its_fix(slips, named):
    from course_utils.checks.alexnet import PCA_SLIPS

    result = run_check("pca-colour", {"pca_colour_shift": _pca_with(**slips)})
    assert result.status == FAILED and "\n" not in result.line()
    if named:
        said = "off because " + "; and ".join(PCA_SLIPS[key] for key in named)
        assert said in result.message and result.message.endswith(said), result.message
    else:
        assert "off because" not in result.message and "expected" in result.message
    assert run_check("pca-colour", {"pca_colour_shift": _pca_with()}).status == PASSED


def test_pca_check_fixes_the_eigenvector_signs_whatever_scikit_learn_picks(monkeypatch):
    """scikit-learn before 1.5 chose component signs differently; the expected value must not care."""
    from sklearn.decomposition import PCA

    from course_utils.checks.alexnet import pca_expected

    rng = np.random.default_rng(1)
    images = rng.normal(size=(3, 3, 4, 4)) * np.array([0.3, 0.2, 0.1])[:, None, None]
    alphas = rng.normal(size=(3, 3))
    pixels = images.transpose(0, 2, 3, 1).reshape(-1, 3)
    values, vectors = np.linalg.eigh(np.cov(pixels.T))
    values, vectors = values[::-1], vectors[:, ::-1]
    vectors = vectors * np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(3)])
    by_hand = images + ((alphas * values) @ vectors.T)[:, :, None, None]
    assert np.allclose(pca_expected(images, alphas), by_hand)

    fit = PCA.fit

    def flipped_fit(self, x, y=None):  # the other sign choice, on every component
        fit(self, x, y)
        self.components_ = -self.components_
        return self

    monkeypatch.setattr(PCA, "fit", flipped_fit)
    assert np.allclose(pca_expected(images, alphas), by_hand)


def _clobber(value):
    """Overwrite an argument in place, as a careless student function might."""
    import torch

    if isinstance(value, np.ndarray):
        value[...] = 0.123
    elif isinstance(value, torch.Tensor):
        value.fill_(0.123 if value.is_floating_point() else 0)
    elif isinstance(value, list):
        value.clear()


@pytest.mark.parametrize("exercise_id", sorted(checks.registry()))
def test_a_right_answer_that_changes_its_inputs_in_place_still_passes(exercise_id):
    """The check hands the student copies, so its expected values come from the real inputs."""
    import torch

    def careless(solution):
        def fn(*args, **kwargs):
            result = solution(*args, **kwargs)
            if isinstance(result, (np.ndarray, torch.Tensor)):
                result = result.copy() if isinstance(result, np.ndarray) else result.clone()
            elif isinstance(result, tuple):
                result = tuple(r.clone() if isinstance(r, torch.Tensor) else r for r in result)
            for value in (*args, *kwargs.values()):
                _clobber(value)
            return result

        return fn

    name = checks.registry()[exercise_id].names[0]
    solved = next(ns[name] for ns in SOLVED.values() if name in ns)
    result = run_check(exercise_id, {name: careless(solved)})
    assert result.status == PASSED, result.line()


def test_maxpool_backward_failing_inside_gradcheck_is_one_line():
    solved = SOLVED["05"]["maxpool2d_backward"]
    calls = []

    def right_five_times(dout, argmax, input_shape):
        calls.append(1)
        return solved(dout, argmax, input_shape) if len(calls) <= 5 else np.zeros((1, 2, 3))

    result = run_check("maxpool-backward", {"maxpool2d_backward": right_five_times})
    assert result.status == FAILED and "\n" not in result.line()
    assert "torch.autograd.gradcheck raised RuntimeError" in result.message, result.message


def _kinds(args, kwargs) -> tuple:
    """How a function is called: each argument's type (and dtype), keywords by name."""
    import torch

    def kind(value):
        if isinstance(value, torch.nn.Module):
            return "Module"
        if isinstance(value, (torch.Tensor, np.ndarray)):
            return f"{type(value).__name__}[{value.dtype}]"
        if isinstance(value, (list, tuple)):
            return f"{type(value).__name__}[{','.join(sorted({kind(v) for v in value}))}]"
        return type(value).__name__

    return tuple(kind(a) for a in args) + tuple(f"{k}={kind(v)}" for k, v in kwargs.items())


@pytest.mark.parametrize("exercise_id", sorted(checks.registry()))
def test_grading_calls_each_function_the_way_its_public_check_does(exercise_id):
    """A function that passes its public check is never failed by how grading calls it: every
    hidden case, after its trip through the wire into the sandbox, passes arguments of types
    (tuple vs list, tensor vs array, dtype) and keywords the public check also used."""
    import json

    from course_utils.instructor.grading import wire
    from course_utils.instructor.grading.hidden import hidden_tests
    from course_utils.instructor.grading.sandbox import harness_function, student_arguments

    name = checks.registry()[exercise_id].names[0]
    solved = next(ns[name] for ns in SOLVED.values() if name in ns)
    public = set()

    def spy(*args, **kwargs):
        public.add(_kinds(args, kwargs))
        return solved(*args, **kwargs)

    assert run_check(exercise_id, {name: spy}).status == PASSED
    test = hidden_tests()[exercise_id]
    seen = set()

    def recorded(*args, **kwargs):
        seen.add(_kinds(args, kwargs))
        return solved(*args, **kwargs)

    for args, kwargs in test.cases(np.random.default_rng(0)):
        sent = {"args": list(args), "kwargs": kwargs, "as_torch": test.as_torch}
        received = wire.decode(json.loads(json.dumps(wire.encode(sent))))
        arguments, keywords = student_arguments(received)
        if test.harness is None:
            seen.add(_kinds(arguments, keywords))
        else:  # the harness builds the student's inputs from the hidden numbers
            harness_function(test.harness)(recorded, *arguments, **keywords)
    for hidden in seen:
        assert hidden in public, f"grading calls {name}{hidden}; the public check only {public}"


def test_grading_reads_a_return_value_as_the_public_check_does():
    """Tensors of any dtype (bfloat16 included) are numbers to both; a string is numbers to
    neither, and grading then says so instead of 'a call raised ValueError'."""
    import torch

    from course_utils.instructor.grading.sandbox import result_array

    answer = torch.tensor([[1.5, -2.0]], dtype=torch.bfloat16, requires_grad=True)
    read = result_array(answer)
    assert read.dtype == np.float64 and read.tolist() == [[1.5, -2.0]]
    public = run_check("convolve-full", {"convolve": lambda x, w: answer})
    assert "expected shape" in public.message  # read as an array, not a traceback
    assert result_array(["1", "x"]) is None
    as_list = run_check(
        "conv1d-windows", {"conv1d_windows": lambda *a, **k: list(good_windows(*a, **k))}
    )
    assert as_list.passed, as_list.message  # grading reads a list of numbers too
    assert (
        "expected a NumPy array"
        in run_check("convolve-full", {"convolve": lambda x, w: "x"}).message
    )


def test_a_mismatch_names_the_element_that_breaks_the_tolerance():
    """Not the largest absolute difference, which can be inside the tolerance of a large value."""
    with pytest.raises(checks.Mismatch) as failure:
        compare.expect_array(
            np.array([100.0005, 0.0011] + [0.0] * 11), [100.0, 0.001] + [0.0] * 11, what="f()"
        )
    message = str(failure.value)
    assert "at index (1,) expected 0.001, got 0.0011" in message, message
    assert message.endswith(
        "at index (1,) expected 0.001, got 0.0011 (off by 0.0001, allowed 1e-06)"
    )


def test_single_precision_answers_are_told_to_keep_float64():
    solved = SOLVED["02"]["conv2d_naive"]

    def in_float32(x, w, b=None, stride=1, padding=0):
        b = None if b is None else b.float()
        return solved(x.float(), w.float(), b, stride=stride, padding=padding)

    line = run_check("conv2d-naive", {"conv2d_naive": in_float32}).line()
    assert line.startswith("❌") and "single-precision rounding" in line, line
    assert "dtype=" in line
    slightly_wrong = run_check(
        "conv2d-naive", {"conv2d_naive": lambda *a, **k: solved(*a, **k) * 1.001}
    )
    assert slightly_wrong.status == FAILED and "single-precision" not in slightly_wrong.message


def _hidden_calls(exercise_id: str) -> list[dict]:
    """The calls grading makes for ``exercise_id``'s hidden test (inputs, keywords, pick)."""
    from course_utils.instructor.grading.hidden import hidden_tests

    test = hidden_tests()[exercise_id]
    cases = test.cases(np.random.default_rng(0))
    return [{"args": list(a), "kwargs": k, "pick": p} for a, k in cases for p in test.picks]


def _graded_problem(exercise_id: str, call: dict, got) -> str | None:
    """Grading's verdict on ``got`` as the result of ``call``."""
    from course_utils.instructor.grading import wire
    from course_utils.instructor.grading.hidden import hidden_tests
    from course_utils.instructor.grading.sandbox import Limits
    from course_utils.instructor.grading.score import case_problem

    got = np.asarray(got, dtype=np.float64)
    test = hidden_tests()[exercise_id]
    return case_problem({"status": "ok"}, wire.encode(got), call, test, Limits())


def test_grading_gives_the_same_single_precision_hint():
    from course_utils.instructor.grading.hidden import hidden_tests

    call = _hidden_calls("conv2d-naive")[0]
    expected = hidden_tests()["conv2d-naive"].expected_for(call)
    assert _graded_problem("conv2d-naive", call, expected.copy()) is None
    smallest = np.unravel_index(np.abs(expected).argmin(), expected.shape)
    assert abs(expected[smallest]) < 0.05  # float32's error is absolute, so small values fail
    float32_like = expected.copy()
    float32_like[smallest] += 2e-6
    message = _graded_problem("conv2d-naive", call, float32_like)
    assert message.startswith("wrong values on a hidden case: this is single-precision rounding")
    assert (
        _graded_problem("conv2d-naive", call, expected * 1.001) == "wrong values on a hidden case"
    )


@pytest.mark.parametrize(
    "exercise_id", sorted(e for e, test in hidden_tests().items() if test.slips)
)
def test_grading_feedback_names_the_common_mistakes_the_public_check_names(exercise_id):
    """Each slip of a hidden test, returned on a hidden case where it differs from the right
    answer, is named in the feedback (nothing hidden in it: the public check says the same)."""
    test = hidden_tests()[exercise_id]
    named, known = set(), set()
    for call in _hidden_calls(exercise_id):
        expected = test.expected_for(call)
        slips = {
            explanation: np.asarray(wrong[call["pick"]] if call["pick"] is not None else wrong)
            for explanation, wrong in test.slips(*call["args"], **call["kwargs"]).items()
        }

        def same(a, b):
            return a.shape == b.shape and np.allclose(a, b, atol=test.atol, rtol=test.rtol)

        for explanation, wrong in slips.items():
            known.add(explanation)
            if same(wrong, expected):
                continue  # this case cannot tell the slip from the right answer
            problem = _graded_problem(exercise_id, call, wrong)
            # where two slips give the same result on this case, either explanation is right
            fitting = [e for e, other in slips.items() if same(other, wrong)]
            assert problem in [f"wrong values on a hidden case: {e}" for e in fitting], problem
            if problem.endswith(explanation):
                named.add(explanation)
    assert named == known, f"no hidden case tells these from the right answer: {known - named}"


def _define_in_cell(src: str, cell_name: str) -> dict:
    """Run ``src`` as Jupyter runs a cell: the source kept in linecache under the cell's name,
    in a namespace whose ``__name__`` is ``__main__``."""
    import linecache

    linecache.cache[cell_name] = (len(src), None, src.splitlines(True), cell_name)
    namespace = {"__name__": "__main__", "np": np}
    exec(compile(src, cell_name, "exec"), namespace)
    return namespace


def test_a_function_defined_outside_its_exercise_cell_gets_a_note():
    body = (
        "def convolve(x, w):\n    out = np.zeros(len(x) + len(w) - 1)\n"
        "    for a in range(len(x)):\n        out[a : a + len(w)] += x[a] * w\n    return out\n"
    )
    elsewhere = _define_in_cell(body, "<cell-below>")
    note = "comes from a cell other than its `# EXERCISE: convolve-full` cell"
    result = run_check("convolve-full", elsewhere)
    assert result.status == PASSED and note in result.message
    wrong = _define_in_cell(body.replace("x[a] * w\n", "x[a] * w[::-1]\n"), "<c2>")
    assert note in run_check("convolve-full", wrong).message
    in_place = _define_in_cell("# EXERCISE: convolve-full\n" + body, "<exercise-cell>")
    assert note not in run_check("convolve-full", in_place).message
    assert note not in run_check("convolve-full", {"convolve": np.convolve}).message


def test_check_warns_about_a_name_grading_will_not_define(capsys):
    """In Jupyter, an exercise cell that reads a constant set in a cell grading does not run
    passes its check with a warning that names the constant; set in the exercise cell, none."""
    from IPython.core.interactiveshell import InteractiveShell

    exercise = (
        "# EXERCISE: convolve-full\ndef convolve(x, w):\n    out = np.zeros(len(x) + len(w) - 1)\n"
        "    for a in range(len(x)):\n        out[a : a + len(w)] += SCALE * x[a] * w\n"
        "    return out\n"
    )
    shell = InteractiveShell.instance()
    try:
        for cell in (
            "import numpy as np\nfrom course_utils import check",
            "SCALE = 1.0\nprint('a cell that computes')",
            exercise,
            "check('convolve-full')",
        ):
            shell.run_cell(cell, store_history=True)  # as Jupyter runs a cell
        warned = capsys.readouterr().out
        shell.run_cell(exercise.replace("def convolve", "SCALE = 1.0\n\ndef convolve"), True)
        shell.run_cell("check('convolve-full')", store_history=True)
        quiet = capsys.readouterr().out
    finally:
        InteractiveShell.clear_instance()
    assert "\n✅ convolve-full" in warned and "⚠ grading will not find `SCALE`" in warned
    assert "define it in the exercise cell" in warned
    assert quiet.startswith("✅ convolve-full") and "⚠" not in quiet


def _session(*cells: str) -> str:
    """What Jupyter prints for ``cells`` run in order in a fresh IPython session."""
    import contextlib
    import io

    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            for cell in cells:
                shell.run_cell(cell, store_history=True)
    finally:
        InteractiveShell.clear_instance()
    return out.getvalue()


_LOOP = (
    "# EXERCISE: convolve-full\ndef convolve(x, w):\n    out = np.zeros(len(x) + len(w) - 1)\n"
    "    for a in range(len(x)):\n        out[a : a + len(w)] += x[a] * w * SCALE\n    return out\n"
)
_SETUP = "import course_utils\nfrom course_utils import check\n\nconfig = course_utils.setup(quiet=True)\nimport numpy as np\n"


@pytest.mark.parametrize(
    ("cells", "warning"),
    [
        # a name added to the setup cell: grading runs the course's own setup cell
        ([_SETUP + "SCALE = 1.0\n", _LOOP], "⚠ grading will not find `SCALE`"),
        # IPython's display is no builtin in grading
        ([_SETUP, _LOOP.replace("* SCALE", "").replace("    return out", "    display(out)\n    return out")], "⚠ grading will not find `display`"),
        # a test line at the end of the exercise cell: move it, the function still counts
        ([_SETUP, "sample = np.ones(3)", _LOOP.replace(" * SCALE", "") + "print(convolve(sample, sample))\n"], "move that line to a cell of its own"),
        # what the course's setup cell binds is there in grading: no warning
        ([_SETUP, _LOOP.replace("w * SCALE", "w * float(np.ones(1)[0])")], None),
    ],
)  # fmt: skip
def test_the_grading_warning_follows_what_grading_runs(cells, warning):
    printed = _session(*cells, "check('convolve-full')")
    assert "✅ convolve-full" in printed, printed
    if warning is None:
        assert "⚠" not in printed, printed
    else:
        assert warning in printed, printed


def test_the_names_the_setup_cells_bind_are_known_to_the_warning():
    import ast

    from course_utils.checks.graded_cells import SETUP_NAMES

    bound = set()
    for namespace_path in _notebooks.notebook_paths():
        import nbformat

        nb = nbformat.read(namespace_path, as_version=4)
        setup = next(c.source for c in nb.cells if c.cell_type == "code")
        for node in ast.walk(ast.parse(setup)):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                bound.add(node.id)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound |= {a.asname or a.name.split(".")[0] for a in node.names}
    assert bound == SETUP_NAMES


def test_a_decorated_function_is_read_through_its_decorator():
    body = "@torch.no_grad()\ndef convolve(x, w):\n" + _LOOP.split("):\n", 1)[1].replace(
        " * SCALE", ""
    )
    solved = _define_in_cell("# EXERCISE: convolve-full\nimport torch\n" + body, "<decorated>")
    assert hasattr(solved["convolve"], "__wrapped__")
    result = run_check("convolve-full", solved)
    assert result.status == PASSED and "note" not in result.message, result.message
    stub = "@torch.no_grad()\ndef convolve(x, w):\n    raise NotImplementedError\n"
    unattempted = _define_in_cell("# EXERCISE: convolve-full\nimport torch\n" + stub, "<stub>")
    assert run_check("convolve-full", unattempted).status == NOT_ATTEMPTED


@pytest.mark.parametrize(
    "build",
    [
        lambda a: nn.Sequential(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2, return_indices=True)),
        lambda a: _TupleNet(),
    ],
)
def test_a_network_that_breaks_the_summary_gets_a_line_not_a_traceback(build):
    result = run_check("lenet5", {"build_lenet5": build})
    assert result.status == FAILED and "does not go through" in result.message, result.message


class _TupleNet(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10], None


def test_checks_survive_a_profiler_system_exit_and_an_unprintable_exception():
    import cProfile
    import sys

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        result = run_check("convolve-full", {"convolve": good_convolve})  # as under %prun
        still = sys.getprofile()
    finally:
        profiler.disable()
    assert result.status == PASSED and still is not None  # and the profiler kept running

    def leaves(x, w):
        sys.exit(3)

    assert "raised SystemExit: 3" in run_check("convolve-full", {"convolve": leaves}).message

    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError

    def raises(x, w):
        raise Unprintable

    line = run_check("convolve-full", {"convolve": raises}).message
    assert "raised Unprintable: (an exception that cannot be shown as text)" in line


def test_maxpool_forward_may_return_a_list_as_grading_reads_it():
    solved = SOLVED["05"]["maxpool2d_forward"]
    result = run_check(
        "maxpool-forward", {"maxpool2d_forward": lambda *a, **k: list(solved(*a, **k))}
    )
    assert result.status == PASSED, result.message


def test_a_mismatch_never_shows_its_difference_equal_to_the_tolerance():
    """Two significant digits unless they would print the failing difference as the tolerance."""
    with pytest.raises(checks.Mismatch) as failure:
        compare.expect_array(
            np.array([1 + 1.04e-5]), np.array([1.0]), what="f()", atol=1e-5, rtol=0
        )
    assert str(failure.value).endswith("(off by 1.04e-05, allowed 1e-05)"), failure.value


def _defined(source: str) -> dict:
    namespace = {"__name__": "__main__"}
    exec(compile("import torch\n" + source, "<cell>", "exec"), namespace)
    return namespace


def test_a_function_that_switches_gradients_off_for_good_fails_and_they_come_back():
    import torch

    namespace = _defined(
        "def frozen_features(backbone, x, batch_size=64):\n"
        "    torch.set_grad_enabled(False)\n"
        "    backbone.eval()\n"
        "    return torch.cat([backbone(x[i:i + batch_size]).flatten(1)\n"
        "                      for i in range(0, len(x), batch_size)])\n"
    )
    line = run_check("frozen-features", namespace).line()
    assert line.startswith("❌") and "use `with torch.no_grad():`" in line, line
    assert torch.is_grad_enabled()


def test_a_return_value_that_breaks_when_read_gives_a_failure_line():
    namespace = _defined(
        "class Odd:\n"
        "    @property\n"
        "    def shape(self):\n"
        "        raise RuntimeError('no shape')\n"
        "def space_to_depth(x, block):\n"
        "    return Odd()\n"
        "def layerwise_param_groups(blocks, head_lr, decay):\n"
        "    return [{'params': [p for b in blocks for p in b.parameters()], 'lr': 10**400}]\n"
    )
    line = run_check("space-to-depth", namespace).line()
    assert line.startswith("❌ space-to-depth: what `space_to_depth` returned could not be checked")
    line = run_check("lr-groups", namespace).line()
    assert line.startswith("❌") and "lr is not a real number" in line, line


def test_float32_learning_rates_pass_and_a_numpy_ascent_step_is_named():
    namespace = _defined(
        "def layerwise_param_groups(blocks, head_lr, decay):\n"
        "    groups, lr = [], torch.tensor(head_lr, dtype=torch.float32)\n"
        "    for block in reversed(blocks):\n"
        "        trainable = [p for p in block.parameters() if p.requires_grad]\n"
        "        if trainable:\n"
        "            groups.append({'params': trainable, 'lr': lr})\n"
        "            lr = lr * decay\n"
        "    return groups\n"
        "def ascent_step(unit, x, lr, radius):\n"
        "    x = x.detach().clone().requires_grad_()\n"
        "    unit(x).backward()\n"
        "    y = (x + lr * x.grad).detach()\n"
        "    return (y * min(1.0, radius / y.norm().item())).numpy()\n"
    )
    assert run_check("lr-groups", namespace).passed
    line = run_check("ascent-step", namespace).line()
    assert "returned a NumPy array; return a torch tensor" in line, line


def test_an_ascent_step_on_a_plain_x_is_told_to_record_gradients():
    namespace = _defined(
        "def ascent_step(unit, x, lr, radius):\n    unit(x).backward()\n    return x\n"
    )
    line = run_check("ascent-step", namespace).line()
    assert line.startswith("❌ ascent-step: ascent_step(a function, x (3, 3, 3)"), line
    assert "x = x.detach().clone().requires_grad_()" in line


def test_common_slips_in_notebooks_09_and_10_are_named():
    namespace = _defined(
        "import torch.nn as nn\n"
        "import torch.nn.functional as F\n"
        "def blur_downsample(x, stride=2):\n"
        "    k = torch.tensor([1.0, 2.0, 1.0])\n"
        "    k = (k[:, None] * k[None, :] / 16).expand(x.shape[1], 1, 3, 3)\n"
        "    x = F.pad(x, (1, 1, 1, 1), mode='reflect')\n"
        "    return F.conv2d(x, k, stride=stride, groups=x.shape[1])\n"
        "def train_only_norm_layers(model, head):\n"
        "    norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)\n"
        "    chosen = [p for m in model.modules() if isinstance(m, norms)\n"
        "              for p in m.parameters(recurse=False)] + list(head.parameters())\n"
        "    return chosen\n"
        "def layerwise_param_groups(blocks, head_lr, decay):\n"
        "    groups, lr = [], head_lr\n"
        "    for block in reversed(blocks):\n"
        "        copies = [p.detach() for p in block.parameters() if p.requires_grad]\n"
        "        if copies:\n"
        "            groups.append({'params': copies, 'lr': lr})\n"
        "            lr *= decay\n"
        "    return groups\n"
    )
    expected = {
        "blur-downsample": "make the kernel with dtype=x.dtype",
        "norm-only": "first set requires_grad_(False) on every parameter",
        "lr-groups": "a copy such as p.detach()",
    }
    for exercise_id, needle in expected.items():
        line = run_check(exercise_id, namespace).line()
        assert line.startswith("❌") and needle in line, line


def test_the_course_code_rule_lets_a_passed_network_and_c_extensions_be_used():
    """Calling the layers of a passed network (a check's own Recorder among them) is the
    student's own work; a C function whose __module__ is a module object does not break the watch."""
    import psutil._psutil_linux as psutil_c  # ipykernel's dependency

    from course_utils.checks import ruled_out

    namespace = _defined(
        "def frozen_features(backbone, x, batch_size=64):\n"
        "    backbone.eval()\n"
        "    outputs = []\n"
        "    with torch.no_grad():\n"
        "        for start in range(0, len(x), batch_size):\n"
        "            h = x[start:start + batch_size]\n"
        "            for layer in backbone:\n"
        "                h = layer.forward(h)\n"
        "            outputs.append(h.flatten(1))\n"
        "    return torch.cat(outputs)\n"
    )
    assert run_check("frozen-features", namespace).passed
    assert not isinstance(psutil_c.getpagesize.__module__, str)
    with ruled_out.watch(()) as seen:
        psutil_c.getpagesize()
    assert seen == []


def test_a_halved_backbone_and_computed_tensors_in_groups_are_named():
    namespace = _defined(
        "def frozen_features(backbone, x, batch_size=64):\n"
        "    backbone.eval().half()\n"
        "    with torch.no_grad():\n"
        "        return torch.cat([backbone(x[i:i + batch_size].half()).flatten(1).float()\n"
        "                          for i in range(0, len(x), batch_size)])\n"
        "def layerwise_param_groups(blocks, head_lr, decay):\n"
        "    groups, lr = [], head_lr\n"
        "    for block in reversed(blocks):\n"
        "        scaled = [p * 1 for p in block.parameters() if p.requires_grad]\n"
        "        if scaled:\n"
        "            groups.append({'params': scaled, 'lr': lr})\n"
        "            lr *= decay\n"
        "    return groups\n"
    )
    line = run_check("frozen-features", namespace).line()
    assert "the backbone's weights changed type" in line, line
    line = run_check("lr-groups", namespace).line()
    assert "a tensor computed from a parameter (such as p * 1)" in line, line
