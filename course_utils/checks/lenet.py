"""Public checks for notebook 06: LeNet-5 built layer by layer, against the paper's table, and
the debugging ritual of overfitting one batch."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from course_utils.checks import Mismatch, NotAttempted, call, call_shared, exercise
from course_utils.checks.compare import expect_array
from course_utils.checks.harnesses import (
    OVERFIT_IMAGES,
    OVERFIT_LOSS,
    OVERFIT_LR,
    OVERFIT_STEPS,
    Verdict,
    overfit_verdict,
)

#: (C, H, W) after C1, S2, C3, S4, C5 for a 32x32 input (LeCun et al. 1998, figure 2).
PAPER_SHAPES = [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1)]
#: Layer sizes from the same table: (inputs per unit, units) of C1, C3 (dense), C5, F6, output.
PAPER_LAYERS = [(1 * 5 * 5, 6), (6 * 5 * 5, 16), (16 * 5 * 5, 120), (120, 84), (84, 10)]
#: The layer kinds :func:`structure` lists, by the code :func:`describe` gives them (0: other).
KINDS = (nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d, nn.Tanh, nn.ReLU, nn.Flatten, nn.Linear)
KINDS += (nn.Softmax, nn.LogSoftmax)


def structure(model: nn.Module, input_shape: tuple[int, ...] = (3, 1, 32, 32)) -> dict:
    """What a network is, seen from outside: ``params``, the number of ``tanh`` and ``relu``
    modules, the ``output`` shape for a zero batch of ``input_shape``, the (C, H, W) ``shapes``
    after every convolution and pooling layer and the ``order`` in which its layers ran (names,
    "other" for a kind outside :data:`KINDS`)."""
    shapes: list[tuple[int, ...]] = []
    order: list[str] = []

    def seen(module, _inputs, out):
        order.append(type(module).__name__ if isinstance(module, KINDS) else "other")
        if isinstance(module, (nn.Conv2d, nn.AvgPool2d, nn.MaxPool2d)):
            shapes.append(tuple(out.shape[1:]))

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(seen) for m in leaves]
    try:
        with torch.no_grad():
            out = model(torch.zeros(input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    kinds = [type(m) for m in model.modules()]
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "tanh": kinds.count(nn.Tanh),
        "relu": kinds.count(nn.ReLU),
        "output": tuple(out.shape),
        "shapes": shapes,
        "order": order,
    }


def describe(model: nn.Module) -> list[int]:
    """:func:`structure` as plain numbers, for grading: parameters, Tanh and ReLU counts, the
    output shape, every (C, H, W), then each layer's kind as its index in :data:`KINDS` + 1."""
    s = structure(model)
    codes = [1 + [k.__name__ for k in KINDS].index(n) if n != "other" else 0 for n in s["order"]]
    return [s["params"], s["tanh"], s["relu"], *s["output"], *sum(s["shapes"], ()), *codes]


def reference(activation: str) -> nn.Sequential:
    """The network the exercise asks for (the layer table of notebook 06): the layers of
    ``models.LeNet5`` in one ``nn.Sequential``."""
    from course_utils.models import LeNet5

    net = LeNet5(activation=activation)
    return nn.Sequential(*net.features, *net.classifier)


def slip_networks(activation: str) -> dict[str, nn.Sequential]:
    """The common departures from the text: explanation -> the network that makes it."""
    pool_first = reference(activation)
    for i in (1, 4):  # activation and pooling of C1/S2 and C3/S4 swapped
        pool_first[i], pool_first[i + 1] = pool_first[i + 1], pool_first[i]
    max_pool = reference(activation)
    for i in (2, 5):
        max_pool[i] = nn.MaxPool2d(2)
    return {
        "max pooling where the text asks for average pooling: use nn.AvgPool2d(2)": max_pool,
        "the pooling runs before the activation; the activation follows each convolution "
        "directly (conv, activation, pool)": pool_first,
        "the network ends with a softmax; return the logits (F.cross_entropy applies the "
        "softmax itself)": nn.Sequential(*reference(activation), nn.Softmax(dim=1)),
        "the network ends with a log-softmax; return the logits (F.cross_entropy applies the "
        "softmax itself)": nn.Sequential(*reference(activation), nn.LogSoftmax(dim=1)),
    }


def slips(activation: str) -> dict[str, list[int]]:
    """Grading's form of :func:`slip_networks`: explanation -> what :func:`describe` gives."""
    return {why: describe(net) for why, net in slip_networks(activation).items()}


@exercise("lenet5", "build_lenet5")
def check_lenet5(build_lenet5) -> str:
    from course_utils.models import LeNet5

    expected_params = sum((fan_in + 1) * units for fan_in, units in PAPER_LAYERS)
    for activation, kind in (("tanh", nn.Tanh), ("relu", nn.ReLU)):
        model = call(build_lenet5, "build_lenet5", activation)
        what = f"build_lenet5({activation!r})"
        if not isinstance(model, nn.Module):
            raise Mismatch(
                f"{what}: expected an nn.Module (an nn.Sequential); got {type(model).__name__}"
            )
        if isinstance(model, LeNet5):
            raise Mismatch(
                f"{what}: build it from torch.nn layers yourself, not with course_utils.models.LeNet5"
            )
        try:
            got = structure(model)
        except Exception as exc:  # noqa: BLE001 - a student's network may fail in any way
            first = (str(exc).splitlines() or [""])[0]
            raise Mismatch(
                f"{what}: a (3, 1, 32, 32) batch does not go through: "
                f"{type(exc).__name__}: {first} (return plain logits from an nn.Sequential)"
            ) from None
        for why, slip in slip_networks(activation).items():
            if got["order"] == structure(slip)["order"]:
                raise Mismatch(f"{what}: {why}")
        if got["shapes"] != PAPER_SHAPES:
            raise Mismatch(
                f"{what}: shapes after the conv and pooling layers should be {PAPER_SHAPES}; "
                f"got {got['shapes']}"
            )
        if got["output"] != (3, 10):
            raise Mismatch(
                f"{what}: expected logits of shape (3, 10) for 3 images; got {got['output']}"
            )
        if got["params"] != expected_params:
            raise Mismatch(
                f"{what}: expected {expected_params:,} parameters (dense C3); got {got['params']:,}"
            )
        wanted = got["tanh"] if kind is nn.Tanh else got["relu"]
        if wanted != 4 or got["tanh"] + got["relu"] != 4:
            raise Mismatch(
                f"{what}: expected 4 {kind.__name__} activations (after C1, C3, C5, F6); "
                f"got {got['tanh']} Tanh and {got['relu']} ReLU"
            )
        expected_order = structure(reference(activation))["order"]
        if got["order"] != expected_order:
            raise Mismatch(
                f"{what}: the layers should run in the order {', '.join(expected_order)}; "
                f"got {', '.join(got['order'])}"
            )
    return (
        f"layers in the table's order, shapes {PAPER_SHAPES[-1]} ... logits (3, 10), "
        f"{expected_params:,} parameters, tanh and ReLU variants"
    )


def overfit_slips(seed: int) -> dict[str, list[float]]:
    """Grading's explanations of a wrong verdict: explanation -> the verdict it gives."""
    return {
        "the first loss is not the untrained model's: measure each loss before its update "
        "(compute the cross-entropy, append it, then backward and step)": [1.0, 0.0, 1.0, 1.0],
        "the model's weights did not change: give the optimiser model.parameters() of the model "
        "you were passed, and call its step()": [1.0, 1.0, 0.0, 0.0],
        f"the loss did not get below {OVERFIT_LOSS}: use Adam at the lr given for all the "
        "steps, and zero the gradients before each backward pass": [1.0, 1.0, 0.0, 1.0],
        "the list does not hold one loss per step: append exactly one loss in each of the "
        "`steps` steps": [0.0, 1.0, 1.0, 1.0],
    }


@exercise("overfit-one-batch", "overfit_one_batch")
def check_overfit_one_batch(overfit_one_batch) -> str:
    steps = OVERFIT_STEPS

    def run(fn, *args, **kwargs):
        return call_shared(fn, "overfit_one_batch", *args, **kwargs)

    what = (
        f"overfit_one_batch(a fresh small CNN, {OVERFIT_IMAGES} noise images, their labels, "
        f"steps={steps}, lr={OVERFIT_LR})"
    )
    try:
        verdict, n = overfit_verdict(overfit_one_batch, seed=0, run=run)
    except (Mismatch, NotAttempted):  # from the student's call itself: already one line
        raise
    except Verdict as exc:
        raise Mismatch(f"{what}: {exc}") from None
    except NotImplementedError:  # raised while its losses were read (a generator)
        raise NotAttempted("`overfit_one_batch` still raises NotImplementedError") from None
    except Exception as exc:  # noqa: BLE001 - reading the student's losses may raise anything
        raise Mismatch(f"{what}: reading the losses raised {type(exc).__name__}: {exc}") from None
    if not verdict[0]:
        raise Mismatch(f"{what}: expected {steps} losses, one per step; got {n['count']}")
    if not verdict[3]:
        raise Mismatch(f"{what}: {list(overfit_slips(0))[1]}")
    if not verdict[1]:
        raise Mismatch(
            f"{what}: the first loss should be the untrained model's cross-entropy, "
            f"{n['start']:.4f}; got {n['first']:.4f} (measure each loss with F.cross_entropy, "
            "before its update)"
        )
    if not verdict[2]:
        raise Mismatch(
            f"{what}: after training, the loss on the batch is {n['after']:.3f}, not below "
            f"{OVERFIT_LOSS} (Adam at the lr given, gradients zeroed before each backward pass)"
        )
    return (
        f"first loss {n['first']:.3f} (ln 10 = {math.log(10):.3f}), after {steps} steps "
        f"{n['after']:.4f}: the network can memorise one batch"
    )


#: The layers with parameters that ``lenet_parameters`` counts, in order.
LENET_LAYERS = ("C1", "C3", "C5", "F6", "output")


def lenet_layer_parameters(num_classes: int) -> list[int]:
    """Parameters of each layer of :data:`LENET_LAYERS` in ``models.LeNet5(num_classes=...)``."""
    from course_utils.models import LeNet5

    net = LeNet5(num_classes=num_classes)
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return [sum(p.numel() for p in m.parameters()) for m in layers]


def lenet_parameter_slips(num_classes: int) -> dict[str, list[int]]:
    """What the common slips in ``lenet_parameters`` give: explanation -> the five counts."""
    counts = lenet_layer_parameters(num_classes)
    units = [6, 16, 120, 84, num_classes]
    return {
        "the biases are missing: every unit of a dense layer and every kernel of a convolution "
        "has one": [c - u for c, u in zip(counts, units, strict=True)],
        "C3 is counted from the paper's sparse table (1,516); models.LeNet5's C3 reads all 6 of "
        "S2's maps: 16 x (6 x 5 x 5 + 1)": [counts[0], 1_516, *counts[2:]],
        "each kernel of C3 and C5 is counted over one input map; a kernel spans all of its "
        "input's maps (C3: 6 x 5 x 5 weights, C5: 16 x 5 x 5)": [
            counts[0],
            16 * (5 * 5 + 1),
            120 * (5 * 5 + 1),
            *counts[3:],
        ],
    }


@exercise("lenet-parameters", "lenet_parameters")
def check_lenet_parameters(lenet_parameters) -> str:
    for num_classes in (10, 2, 100):
        got = call(lenet_parameters, "lenet_parameters", num_classes)
        expect_array(
            got,
            lenet_layer_parameters(num_classes),
            what=f"lenet_parameters({num_classes}) as [C1, C3, C5, F6, output]",
            atol=0,
            rtol=0,
            slips=lenet_parameter_slips(num_classes),
        )
    return "C1, C3, C5, F6 and output equal models.LeNet5's layers, for 10, 2 and 100 classes"
