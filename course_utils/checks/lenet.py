"""Public check for notebook 06: LeNet-5 built layer by layer, against the paper's table."""

from __future__ import annotations

import torch
import torch.nn as nn

from course_utils.checks import Mismatch, call, exercise

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
