"""The wrong-answer corpus: answers a careless or rule-breaking student writes, each run through
the public check and through grading (the sandbox's stages, in this process, and the grader's
scoring), with the cause each must name. A check that lets one through fails the build.

Each wrong answer is the notebook's own solution with one edit (so the corpus breaks loudly
when a solution changes), or a short answer written out.
"""

import json
import types
from functools import cache

import pytest

from course_utils.checks import run_check
from course_utils.instructor import notebooks

SETUP = "import math\nimport numpy as np\nimport torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"


solution = cache(notebooks.solved_exercise)


def edited(exercise_id: str, old: str, new: str) -> str:
    src = solution(exercise_id)
    assert old in src, f"the {exercise_id} solution no longer contains {old!r}"
    return src.replace(old, new)


def written(exercise_id: str, body: str) -> str:
    return f"# EXERCISE: {exercise_id}\n{body}"


NAIVE_LOOP = "    for i in range(h_out):\n        for j in range(w_out):\n"
#: (exercise, what the student did, exercise cell source, the cause its ❌ must name)
CORPUS = [
    # notebook 01
    (
        "convolve-full",
        "np.convolve",
        written("convolve-full", "def convolve(x, w):\n    return np.convolve(x, w)\n"),
        "rules out",
    ),
    (
        "convolve-full",
        "np.correlate of the flipped kernel",
        written(
            "convolve-full", "def convolve(x, w):\n    return np.correlate(x, w[::-1], 'full')\n"
        ),
        "rules out",
    ),
    (
        "convolve-full",
        "scipy.signal.convolve, imported by name",
        written(
            "convolve-full",
            "from scipy.signal import convolve as c\n\ndef convolve(x, w):\n    return c(x, w)\n",
        ),
        "rules out",
    ),
    (
        "convolve-full",
        "loops without the flip",
        edited("convolve-full", "w[t - a]", "w[k - 1 - (t - a)]"),
        "convolution flips the kernel",
    ),
    ("convolve-full", "no return", edited("convolve-full", "    return s\n", ""), "returned None"),
    (
        "convolve-full",
        "an integer output array",
        edited("convolve-full", "np.zeros(n + k - 1)", "np.zeros(n + k - 1, dtype=int)"),
        "integer",
    ),
    (
        "conv-matrix",
        "the flipped kernel",
        edited("conv-matrix", "M[i, j] = w[m]", "M[i, j] = w[k - 1 - m]"),
        "true convolution (the kernel flipped)",
    ),
    (
        "conv-matrix",
        "padding ignored",
        edited("conv-matrix", "j = i + m - padding", "j = i + m"),
        "the padding is ignored",
    ),
    (
        "conv1d-windows",
        "the flipped kernel",
        edited(
            "conv1d-windows", "np.asarray(w, dtype=float)\n", "np.asarray(w, dtype=float)[::-1]\n"
        ),
        "true convolution (the kernel flipped)",
    ),
    (
        "conv1d-windows",
        "stride ignored",
        edited(
            "conv1d-windows",
            "i * stride : i * stride + k] for i in range(n_out)",
            "i : i + k] for i in range(n_out)",
        ),
        "the stride is ignored",
    ),
    # notebook 02
    (
        "conv2d-naive",
        "F.conv2d",
        written(
            "conv2d-naive",
            "def conv2d_naive(x, w, b=None, stride=1, padding=0):\n    return F.conv2d(x, w, b, stride=stride, padding=padding)\n",
        ),
        "rules out",
    ),
    (
        "conv2d-naive",
        "nn.Conv2d with copied weights",
        written(
            "conv2d-naive",
            "def conv2d_naive(x, w, b=None, stride=1, padding=0):\n    conv = nn.Conv2d(w.shape[1], w.shape[0], w.shape[-2:], stride, padding, bias=b is not None).double()\n    conv.weight.data = w\n    if b is not None:\n        conv.bias.data = b\n    return conv(x).detach()\n",
        ),
        "rules out",
    ),
    (
        "conv2d-naive",
        "F.unfold",
        written(
            "conv2d-naive",
            "def conv2d_naive(x, w, b=None, stride=1, padding=0):\n    cols = F.unfold(x, w.shape[-2:], stride=stride, padding=padding)\n    h = (x.shape[2] + 2 * padding - w.shape[2]) // stride + 1\n    out = (w.flatten(1) @ cols).view(len(x), len(w), h, -1)\n    return out if b is None else out + b.view(1, -1, 1, 1)\n",
        ),
        "rules out",
    ),
    (
        "conv2d-naive",
        "the kernel flipped",
        edited(
            "conv2d-naive", '"nchw,ochw->no", patch, w)', '"nchw,ochw->no", patch, w.flip(-2, -1))'
        ),
        "kernel flipped",
    ),
    (
        "conv2d-naive",
        "no bias",
        edited("conv2d-naive", "        out += b.view(1, -1, 1, 1)\n", "        pass\n"),
        "the bias is missing",
    ),
    (
        "conv2d-naive",
        "stride ignored",
        edited(
            "conv2d-naive",
            "h_out = (x.shape[2] - kh) // stride + 1\n    w_out = (x.shape[3] - kw) // stride + 1",
            "h_out = x.shape[2] - kh + 1\n    w_out = x.shape[3] - kw + 1\n    stride = 1",
        ),
        "the stride is ignored",
    ),
    (
        "conv2d-naive",
        "padding ignored",
        edited("conv2d-naive", "    x = F.pad(x, (padding, padding, padding, padding))\n", ""),
        "the padding is ignored",
    ),
    (
        "im2col",
        "F.unfold whole",
        written(
            "im2col",
            "def im2col(x, kh, kw, stride=1, padding=0):\n    return F.unfold(x, (kh, kw), stride=stride, padding=padding)\n",
        ),
        "rules out",
    ),
    (
        "im2col",
        "rows ordered by kernel position first",
        edited(
            "im2col",
            "cols = x.new_empty(n, c, kh, kw, h_out, w_out)",
            "cols = x.new_empty(n, c, kh, kw, h_out, w_out)\n    cols = cols.transpose(1, 3).transpose(1, 2)",
        ).replace("cols[:, :, di, dj]", "cols[:, di, dj]"),
        "kernel position first",
    ),
    (
        "conv2d-im2col",
        "F.conv2d",
        written(
            "conv2d-im2col",
            "def conv2d_im2col(x, w, b=None, stride=1, padding=0):\n    return F.conv2d(x, w, b, stride, padding)\n",
        ),
        "rules out",
    ),
    (
        "conv2d-im2col",
        "no bias",
        solution("im2col").partition("\n")[2]
        + edited("conv2d-im2col", "        out = out + b.view(1, -1, 1)\n", "        pass\n"),
        "the bias is missing",
    ),
    (
        "conv2d-naive",
        "scipy.signal.correlate on each image",
        written(
            "conv2d-naive",
            "import scipy.signal as ss\n\n"
            "def conv2d_naive(x, w, b=None, stride=1, padding=0):\n"
            "    xp = F.pad(x, (padding,) * 4).numpy()\n"
            "    out = torch.tensor(np.stack([np.concatenate([ss.correlate(img, k.numpy(), 'valid')"
            " for k in w]) for img in xp]))[:, :, ::stride, ::stride]\n"
            "    return out if b is None else out + b.view(1, -1, 1, 1)\n",
        ),
        "rules out",
    ),
    (
        "conv2d-naive",
        "the aten operator itself",
        written(
            "conv2d-naive",
            "def conv2d_naive(x, w, b=None, stride=1, padding=0):\n"
            "    return torch.ops.aten.convolution.default(\n"
            "        x, w, b, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1\n    )\n",
        ),
        "rules out",
    ),
    (
        "learn-kernel",
        "true convolution while learning",
        edited(
            "learn-kernel",
            "F.mse_loss(F.conv2d(x, kernel), y)",
            "F.mse_loss(F.conv2d(x, kernel.flip(-2, -1)), y)",
        ),
        "flipped in both axes",
    ),
    (
        "learn-kernel",
        "a step that updates nothing",
        edited("learn-kernel", "        sgd.step()\n", ""),
        "still all zeros",
    ),
    # notebook 03
    (
        "receptive-field",
        "strides ignored",
        edited("receptive-field", "        jump *= stride\n", ""),
        "the strides are ignored",
    ),
    (
        "receptive-field",
        "dilations ignored",
        edited(
            "receptive-field", "(kernel_size - 1) * dilation * jump", "(kernel_size - 1) * jump"
        ),
        "the dilations are ignored",
    ),
    (
        "receptive-field",
        "a float",
        edited("receptive-field", "    return field\n", "    return float(field)\n"),
        "return a whole number as an int",
    ),
    (
        "equivariance-gap",
        "invariance instead",
        edited(
            "equivariance-gap",
            "(f(shifted) - torch.roll(f(x), (dy, dx), dims=(2, 3)))",
            "(f(shifted) - f(x))",
        ),
        "this measures invariance",
    ),
    (
        "equivariance-gap",
        "the mean difference",
        edited("equivariance-gap", ".abs().max().item()", ".abs().mean().item()"),
        "the mean difference",
    ),
    # notebook 04
    (
        "conv-output-size",
        "dilation ignored",
        edited("conv-output-size", "span = dilation * (kernel_size - 1) + 1", "span = kernel_size"),
        "the dilation is ignored",
    ),
    (
        "conv-output-size",
        "a dilated span of d * k",
        edited(
            "conv-output-size",
            "span = dilation * (kernel_size - 1) + 1",
            "span = dilation * kernel_size",
        ),
        "not d * k",
    ),
    (
        "conv-output-size",
        "a float when there is padding",
        edited(
            "conv-output-size",
            "    return (w_in + 2 * padding - span) // stride + 1",
            "    size = (w_in + 2 * padding - span) // stride + 1\n"
            "    return float(size) if padding else size",
        ),
        "return a whole number as an int",
    ),
    (
        "conv-output-size",
        "padding counted once",
        edited("conv-output-size", "w_in + 2 * padding - span", "w_in + padding - span"),
        "the padding is counted once",
    ),
    (
        "conv-output-size",
        "the + 1 missing",
        edited("conv-output-size", " // stride + 1", " // stride"),
        "the + 1 is missing",
    ),
    (
        "conv-output-size",
        "true division",
        edited("conv-output-size", " // stride + 1", " / stride + 1"),
        "whole number",
    ),
    (
        "conv-flops",
        "multiply and add counted twice",
        edited("conv-flops", "return h_out", "return 2 * h_out"),
        "count each multiply-add once",
    ),
    (
        "conv-flops",
        "input channels missing",
        edited("conv-flops", " * c_in\n", "\n"),
        "the input channels are missing",
    ),
    (
        "conv2d-backward",
        "db as a mean",
        edited("conv2d-backward", "db = dout.sum(dim=(0, 2, 3))", "db = dout.mean(dim=(0, 2, 3))"),
        "so db is the sum",
    ),
    (
        "conv2d-backward",
        "dw of the first image only",
        edited("conv2d-backward", ".sum(dim=0).view(w.shape)", "[0].view(w.shape)"),
        "only the first image",
    ),
    (
        "conv2d-backward",
        "dx through the flipped kernel",
        edited(
            "conv2d-backward",
            "w.reshape(c_out, -1).T @ d",
            "w.flip(-2, -1).reshape(c_out, -1).T @ d",
        ),
        "flipped in both axes",
    ),
    # notebook 05
    (
        "maxpool-forward",
        "F.max_pool2d",
        written(
            "maxpool-forward",
            "def maxpool2d_forward(x, kernel_size=2, stride=2):\n    return F.max_pool2d(x, kernel_size, stride, return_indices=True)\n",
        ),
        "rules out",
    ),
    (
        "maxpool-forward",
        "argmax inside the window",
        edited(
            "maxpool-forward", "argmax[:, :, i, j] = rows * w + cols", "argmax[:, :, i, j] = best"
        ),
        "argmax counts within each window",
    ),
    (
        "maxpool-forward",
        "the last maximum of a tie",
        edited(
            "maxpool-forward",
            "best = window.flatten(2).argmax(dim=2)",
            "flat = window.flatten(2)\n            best = flat.shape[2] - 1 - flat.flip(2).argmax(dim=2)",
        ),
        "the first in reading order",
    ),
    (
        "maxpool-backward",
        "scatter_ instead of scatter_add_",
        edited("maxpool-backward", "dx.scatter_add_(2,", "dx.scatter_(2,"),
        "scatter_add_",
    ),
    (
        "circle-pool",
        "the square window",
        edited(
            "circle-pool",
            "            if dy * dy + dx * dx <= radius * radius:\n",
            "            if True:\n",
        ),
        "the square window",
    ),
    (
        "circle-pool",
        "strict <",
        edited("circle-pool", "<= radius * radius", "< radius * radius or dy == dx == 0"),
        "the disk's rim is left out",
    ),
    (
        "circle-pool",
        "zero padding",
        edited("circle-pool", 'value=float("-inf")', "value=0.0"),
        "pad with -inf",
    ),
    # notebook 06
    (
        "lenet5",
        "max pooling",
        edited("lenet5", "nn.AvgPool2d(2)", "nn.MaxPool2d(2)"),
        "max pooling where the text asks for average pooling",
    ),
    (
        "lenet5",
        "pooling before the activation",
        edited("lenet5", "act(), nn.AvgPool2d(2)", "nn.AvgPool2d(2), act()"),
        "the pooling runs before the activation",
    ),
    (
        "lenet5",
        "a final softmax",
        edited("lenet5", "nn.Linear(84, 10),", "nn.Linear(84, 10), nn.Softmax(dim=1),"),
        "ends with a softmax",
    ),
    (
        "overfit-one-batch",
        "each loss measured after its update",
        edited(
            "overfit-one-batch",
            "        losses.append(batch_loss.item())\n        adam.zero_grad()\n        batch_loss.backward()\n        adam.step()\n",
            "        adam.zero_grad()\n        batch_loss.backward()\n        adam.step()\n        losses.append(F.cross_entropy(model(x), y).item())\n",
        ),
        "before its update",
    ),
    (
        "overfit-one-batch",
        "no optimizer step",
        edited("overfit-one-batch", "        adam.step()\n", ""),
        "weights did not change",
    ),
    (
        "overfit-one-batch",
        "plain SGD at the same rate",
        edited("overfit-one-batch", "torch.optim.Adam(", "torch.optim.SGD("),
        "not below 0.05",
    ),
    (
        "lenet-parameters",
        "no biases",
        written(
            "lenet-parameters",
            "def lenet_parameters(num_classes=10):\n"
            "    return [6 * 25, 16 * 6 * 25, 120 * 16 * 25, 84 * 120, num_classes * 84]\n",
        ),
        "the biases are missing",
    ),
    (
        "lenet-parameters",
        "the paper's sparse C3",
        edited("lenet-parameters", "c3 = 16 * (6 * 5 * 5 + 1)", "c3 = 1516"),
        "sparse table",
    ),
    # notebooks 07 and 08
    (
        "lrn",
        "PyTorch's alpha",
        written(
            "lrn",
            "def local_response_norm(a, n=5, k=2.0, alpha=1e-4, beta=0.75):\n    return nn.LocalResponseNorm(n, alpha=alpha, beta=beta, k=k)(a)\n",
        ),
        "averages the squares",
    ),
    (
        "lrn",
        "a window from i to i + n - 1",
        edited(
            "lrn",
            "squares[:, max(0, i - n // 2) : min(channels, i + n // 2 + 1)]",
            "squares[:, i : i + n]",
        ),
        "the window runs from channel i",
    ),
    (
        "pca-colour",
        "eigh's ascending order",
        edited("pca-colour", "    values, vectors = values.flip(0), vectors.flip(1)\n", ""),
        "ascending order",
    ),
    (
        "pca-colour",
        "no permute",
        edited("pca-colour", "images.permute(0, 2, 3, 1).reshape(-1, 3)", "images.reshape(-1, 3)"),
        "images.reshape(-1, 3)",
    ),
    (
        "pca-colour",
        "sqrt of the eigenvalues",
        edited("pca-colour", "(alphas * values)", "(alphas * values.sqrt())"),
        "sqrt(lambda_i)",
    ),
    (
        "grouped-params",
        "the groups ignored",
        edited("grouped-params", "c_out * (c_in // groups) * k * k", "c_out * c_in * k * k"),
        "the groups are ignored",
    ),
    (
        "grouped-params",
        "one bias per group",
        edited("grouped-params", "(c_out if bias else 0)", "(groups if bias else 0)"),
        "one bias per group",
    ),
    # notebook 09
    (
        "shift-images",
        "the other way",
        edited("shift-images", "x.roll((dy, dx), dims=(2, 3))", "x.roll((-dy, -dx), dims=(2, 3))"),
        "the image moved the other way",
    ),
    # notebook 11
    (
        "space-to-depth",
        "F.pixel_unshuffle",
        written(
            "space-to-depth",
            "def space_to_depth(x, block):\n    return F.pixel_unshuffle(x, block)\n",
        ),
        "rules out",
    ),
    (
        "space-to-depth",
        "the tile position first",
        edited("space-to-depth", "permute(0, 1, 3, 5, 2, 4)", "permute(0, 3, 5, 1, 2, 4)"),
        "puts the input channel first",
    ),
    (
        "space-to-depth",
        "a plain reshape",
        edited("space-to-depth", "tiles.permute(0, 1, 3, 5, 2, 4)", "tiles"),
        "a plain reshape",
    ),
    # the course's own code holds the answers: every exercise rules it out
    (
        "shift-images",
        "the course's invariance.shift",
        written(
            "shift-images",
            "from course_utils import invariance\n\n"
            "def shift_images(x, dx, dy, circular=False):\n"
            "    return invariance.shift(x, dx, dy, mode='circular' if circular else 'zeros')\n",
        ),
        "the course's own code",
    ),
    (
        "blur-downsample",
        "the course's BlurPool",
        written(
            "blur-downsample",
            "from course_utils.invariance import BlurPool\n\n"
            "def blur_downsample(x, stride=2):\n"
            "    return BlurPool(x.shape[1], stride=stride).to(x.dtype)(x)\n",
        ),
        "the course's own code",
    ),
    (
        "ascent-step",
        "the check's reference step",
        written(
            "ascent-step",
            "from course_utils.checks.invariance import reference_ascent_step\n\n"
            "def ascent_step(unit, x, lr, radius):\n"
            "    return reference_ascent_step(unit, x, lr, radius)\n",
        ),
        "the course's own code",
    ),
    (
        "frozen-features",
        "the check's eval_features",
        written(
            "frozen-features",
            "from course_utils.checks import transfer_learning as tl\n\n"
            "def frozen_features(backbone, x, batch_size=64):\n"
            "    return tl.eval_features(backbone, x)\n",
        ),
        "the course's own code",
    ),
    (
        "norm-only",
        "the course's finetune.norm_parameters",
        written(
            "norm-only",
            "from course_utils import finetune\n\n"
            "def train_only_norm_layers(model, head):\n"
            "    for p in model.parameters():\n"
            "        p.requires_grad_(False)\n"
            "    chosen = finetune.norm_parameters(model) + list(head.parameters())\n"
            "    for p in chosen:\n"
            "        p.requires_grad_(True)\n"
            "    return chosen\n",
        ),
        "the course's own code",
    ),
    (
        "ascent-step",
        "the check's reference imported as the answer",
        written(
            "ascent-step",
            "from course_utils.checks.invariance import reference_ascent_step as ascent_step\n",
        ),
        "the course's own code",
    ),
    (
        "conv-output-size",
        "a partial of the check's reference as the answer",
        written(
            "conv-output-size",
            "import functools\n"
            "from course_utils.checks.activations_3d import conv_shape\n\n"
            "conv_output_size = functools.partial(conv_shape)\n",
        ),
        "the course's own code",
    ),
    (
        "lenet5",
        "the course's models.LeNet5",
        written(
            "lenet5",
            "from course_utils import models\n\n"
            "def build_lenet5(activation='tanh'):\n"
            "    return models.LeNet5(activation=activation)\n",
        ),
        "the course's own code",
    ),
]


def public_line(exercise_id: str, source: str) -> str:
    namespace = {"__name__": "__main__"}
    exec(compile(SETUP + source, f"<{exercise_id}>", "exec"), namespace)
    return run_check(exercise_id, namespace).line()


def graded(exercise_id: str, source: str) -> tuple[float, str]:
    """(fraction of hidden cases passed, the grader's first problem) for the exercise cell
    ``source``, its stages run in this process as the sandbox runs them."""
    import tempfile

    from course_utils.instructor.grading import wire
    from course_utils.instructor.grading.hidden import hidden_tests
    from course_utils.instructor.grading.sandbox import Limits, call_stage, execute_stages
    from course_utils.instructor.grading.score import case_problem, hidden_calls

    calls, tests = hidden_calls(types.SimpleNamespace(exercise_ids=[exercise_id]))
    job = {"setup": SETUP, "helpers": [], "cells": [(exercise_id, source)]}
    job["calls"] = wire.decode(
        json.loads(json.dumps(wire.encode(calls)))
    )  # as the zygote gets them
    with tempfile.TemporaryFile() as out:
        execute_stages(job, set(), out.fileno())
        out.seek(0)
        frames = wire.FrameReader().feed(out.read())
    stages = {f["stage"]: f for f in frames if f["t"] == "end"}
    values = {f["stage"]: f["value"] for f in frames if f["t"] == "result"}
    problems = []
    for call in calls:
        name = call_stage(call)
        frame = stages.get(name)
        stage = None if frame is None else {"status": "ok" if frame["ok"] else "error",
                                            "error": frame.get("error", "")}  # fmt: skip
        problems.append(
            case_problem(stage, values.get(name), call, hidden_tests()[exercise_id], Limits())
        )
    passed = sum(p is None for p in problems)
    return passed / len(problems), next((p for p in problems if p), "")


@cache
def outcomes() -> list[dict]:
    rows = []
    for exercise_id, what, source, cause in CORPUS:
        line = public_line(exercise_id, source)
        fraction, feedback = graded(exercise_id, source)
        rows.append(dict(exercise=exercise_id, what=what, cause=cause, line=line,
                         fraction=fraction, feedback=feedback))  # fmt: skip
    return rows


def tally(rows: list[dict], text: str, passed) -> dict:
    return {
        "passed": sum(passed(r) for r in rows),
        "named": sum(not passed(r) and r["cause"] in r[text] for r in rows),
        "bare": sum(not passed(r) and r["cause"] not in r[text] for r in rows),
    }


def test_every_exercise_has_wrong_answers_in_the_corpus():
    from course_utils.checks import registry

    covered = {exercise_id for exercise_id, *_ in CORPUS}
    later = {"ascent-step", "blur-downsample", "frozen-features", "lr-groups", "norm-only"}
    assert covered | later == set(registry()), (
        "covered by tests/test_checks.py and test_transfer.py"
    )


@pytest.mark.parametrize("index", range(len(CORPUS)), ids=[f"{c[0]}: {c[1]}" for c in CORPUS])
def test_a_wrong_answer_fails_the_check_and_grading(index):
    row = outcomes()[index]
    assert row["line"].startswith("❌"), row["line"]  # never ✅ (and ⏳ would hide it)
    assert row["fraction"] < 1, f"grading passed it: {row['feedback']}"


def test_the_corpus_figures():
    """None passes; at least 80 % get their real cause named, in the check and in grading."""
    rows = outcomes()
    public = tally(rows, "line", lambda r: not r["line"].startswith("❌"))
    grading = tally(rows, "feedback", lambda r: r["fraction"] == 1)
    print(json.dumps({"wrong_answers": len(rows), "public_check": public, "grading": grading}))
    bare = [(r["exercise"], r["what"], r["line"]) for r in rows if r["cause"] not in r["line"]]
    assert public["passed"] == grading["passed"] == 0
    assert public["named"] >= 0.8 * len(rows), bare
    assert grading["named"] >= 0.8 * len(rows), [(r["what"], r["feedback"]) for r in rows]


def test_a_magic_inside_a_right_answer_is_not_the_course_code():
    """Grading runs `%time` through its stand-in shell, which is grading's code, not the answer's."""
    lines = solution("conv-flops").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("def ")) + 1
    source = "\n".join([*lines[:at], "    %time _ = 1", *lines[at:]]) + "\n"
    assert graded("conv-flops", source) == (1.0, "")
