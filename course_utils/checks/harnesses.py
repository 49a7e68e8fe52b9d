"""Harnesses for exercises whose answer is about objects plain numbers cannot carry (a network,
an optimizer's parameter groups): they build the inputs from numbers, call the student's function,
observe what it did and return plain numbers. The public checks use the same builders and
observations; during grading the sandbox calls the ``graded_*`` functions on hidden numbers.

The sandbox loads a private copy of this module before any student code runs, so an exercise
cell that rebinds names here (or in the public check modules) changes nothing in grading. A
harness reports a broken rule by raising :class:`Verdict` with a code of :data:`VERDICTS`; the
grader words it from its own copy of that table, never from text the student's process sent.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

#: What each verdict code means, for the student.
VERDICTS = {
    "graph": "the backbone ran with gradients on, which keeps every activation in memory for a "
    "backward pass: compute the features inside `with torch.no_grad():`",
    "dtype": "the backbone's weights changed type (.half(), .double()): leave the backbone as "
    "it is and give it x as it came",
    "statistics": "batch norm's running statistics changed, so the backbone ran in training mode: "
    "call backbone.eval() first",
    "weights": "the backbone's weights changed or got gradients: extraction must not train it",
    "batch": "the backbone got more than batch_size images at once: give it x[start : start + "
    "batch_size] at a time",
    "not-groups": 'not a list of parameter groups, each a dict {"params": [...], "lr": number} '
    "(params a list, not a set)",
    "lr": "a group's lr is not a real number",
    "duplicate": "a parameter appears in more than one group",
    "computed": "a group holds a tensor computed from a parameter (such as p * 1), not the "
    "parameter: put the blocks' own parameters in the groups",
    "frozen": "a group holds a tensor with requires_grad=False (a frozen parameter, or a copy such "
    "as p.detach()): put the blocks' own trainable parameters in the groups",
    "empty": "a group has no parameters: a block with nothing to train gets no group",
    "flags": "the function changed which parameters are trainable; it should only read them",
    "not-parameters": "return a list of the parameters that train (each once)",
    "not-int": "a call returned a number that is not an int: return a whole number as an int "
    "(// divides and floors; int(...) converts)",
    "ascent-graph": "the new x still requires grad: return it without a gradient graph "
    "(compute it from x.detach() or under torch.no_grad())",
    "not-losses": "return a list of the losses, one number per step",
    "overfit-model": "the model no longer computes with its own layers: train it as it was "
    "given (float32, on its device, no layers, hooks or forward added or replaced)",
}


class Verdict(Exception):
    """A broken rule of the exercise, named by a code of :data:`VERDICTS`."""

    def __init__(self, code: str) -> None:
        super().__init__(VERDICTS[code])
        self.code = code


# ----------------------------------------------------------------------------- whole numbers


def graded_whole_number(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, which the exercise asks to be an ``int`` (a size, a count)."""
    got = fn(*args, **kwargs)
    if got is not None and (not isinstance(got, numbers.Integral) or isinstance(got, bool)):
        raise Verdict("not-int")
    return got


# ----------------------------------------------------------------------------- lenet5


def graded_lenet5(build_lenet5, activation):
    """The network ``build_lenet5(activation)`` builds, summarised by ``checks.lenet.describe``."""
    from course_utils.checks.lenet import describe

    model = build_lenet5(activation)
    return None if model is None else describe(model)


# ----------------------------------------------------------------------------- frozen-features


class Recorder(nn.Module):
    """An identity layer that records, for every batch it sees, its size and whether gradients
    were on (also when called through ``.forward``, which skips hooks)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((len(x), torch.is_grad_enabled()))
        return x


def feature_backbone(seed: int, *, dropout: bool = False) -> nn.Sequential:
    """A small backbone in training mode, (N, 3, H, W) -> (N, 6, 1, 1): a :class:`Recorder`,
    convolution, batch norm with running statistics far from the identity, ReLU, [dropout,]
    global average pooling."""
    g = torch.Generator().manual_seed(seed)
    layers = [Recorder(), nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU()]
    layers += [nn.Dropout(0.5)] if dropout else []
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
        model[2].running_mean.copy_(torch.randn(6, generator=g))
        model[2].running_var.copy_(0.5 + torch.rand(6, generator=g))
    return model.train()


def inspect_extraction(run, backbone: nn.Sequential, batch_size: int):
    """``run()``, the student's function on ``backbone``; return what it returned, after raising
    the :class:`Verdict` of the first rule it broke (graph, statistics, weights, batch)."""
    buffers = [b.clone() for b in backbone.buffers()]
    weights = [p.detach().clone() for p in backbone.parameters()]
    got = run()
    seen = backbone[0].seen
    if (isinstance(got, torch.Tensor) and got.requires_grad) or any(grad for _, grad in seen):
        raise Verdict("graph")
    if any(a.dtype != b.dtype for a, b in zip(weights, backbone.parameters(), strict=True)):
        raise Verdict("dtype")
    if any(not torch.equal(a, b) for a, b in zip(buffers, backbone.buffers(), strict=True)):
        raise Verdict("statistics")
    params = list(backbone.parameters())
    if any(p.grad is not None for p in params) or any(
        not torch.equal(a, p) for a, p in zip(weights, params, strict=True)
    ):
        raise Verdict("weights")
    if max((size for size, _ in seen), default=0) > batch_size:
        raise Verdict("batch")
    return got


def graded_frozen_features(frozen_features, x, batch_size, seed):
    """The features of hidden images ``x`` on backbone ``seed`` (with dropout when seed is odd),
    as returned (shape kept)."""
    backbone = feature_backbone(int(seed), dropout=int(seed) % 2 == 1)
    images = torch.from_numpy(x)
    return inspect_extraction(
        lambda: frozen_features(backbone, images, batch_size=int(batch_size)),
        backbone,
        int(batch_size),
    )


# ----------------------------------------------------------------------------- lr-groups

#: Block kinds of the networks the lr-groups checks build, by code (hidden cases send codes).
BLOCK_KINDS = ("conv", "relu", "frozen", "half frozen", "head")


def lr_blocks(codes) -> list[nn.Module]:
    """Blocks from the input up, one per code of :data:`BLOCK_KINDS`: conv + batch norm (all
    trainable, all frozen, or the convolution frozen), a ReLU, or a linear head."""
    torch.manual_seed(0)
    built = []
    for code in codes:
        kind = BLOCK_KINDS[int(code)]
        if kind == "relu":
            built.append(nn.ReLU())
        elif kind == "head":
            built.append(nn.Linear(4, 3))
        else:
            block = nn.Sequential(nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4))
            for module in {"conv": [], "frozen": [block], "half frozen": [block[0]]}[kind]:
                module.requires_grad_(False)
            built.append(block)
    return built


def _rate(lr) -> float:
    """A group's learning rate as a float; :class:`Verdict` "lr" for anything but a real number."""
    if isinstance(lr, torch.Tensor) and lr.numel() == 1 and lr.is_floating_point():
        lr = lr.detach().item()
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise Verdict("lr")
    try:
        return float(lr)
    except (OverflowError, ValueError, TypeError):  # 10**400, or a Real whose float() fails
        raise Verdict("lr") from None


def lrs_seen(blocks, groups) -> np.ndarray:
    """The learning rate an SGD optimizer built from ``groups`` (as they are) gives each
    parameter of ``blocks``, 0 for a parameter in no group; :class:`Verdict` for groups that break
    a rule (not groups, lr not a number, a parameter twice, a frozen parameter, an empty group)."""
    if not isinstance(groups, (list, tuple)) or not all(
        isinstance(g, dict) and {"params", "lr"} <= set(g) for g in groups
    ):
        raise Verdict("not-groups")
    rates = [_rate(g["lr"]) for g in groups]
    try:
        optimizer = torch.optim.SGD(list(groups), lr=0.0)
    except ValueError as exc:
        if "more than one" in str(exc):
            raise Verdict("duplicate") from None
        if "non-leaf" in str(exc):
            raise Verdict("computed") from None
        raise Verdict("not-groups") from None
    except TypeError:
        raise Verdict("not-groups") from None
    seen = {}
    for group, rate in zip(optimizer.param_groups, rates, strict=True):
        if not group["params"]:
            raise Verdict("empty")
        for p in group["params"]:
            if not p.requires_grad:
                raise Verdict("frozen")
            seen[id(p)] = rate
    return np.asarray([seen.get(id(p), 0.0) for b in blocks for p in b.parameters()])


def trainable(blocks) -> list[bool]:
    """``requires_grad`` of every parameter of ``blocks``, in order."""
    return [p.requires_grad for b in blocks for p in b.parameters()]


def graded_lr_groups(layerwise_param_groups, codes, head_lr, decay):
    """The learning rate each parameter of the hidden network ``codes`` gets."""
    blocks = lr_blocks(codes)
    before = trainable(blocks)
    groups = layerwise_param_groups(list(blocks), float(head_lr), float(decay))
    if groups is None:
        return None  # grading names a missing return
    if trainable(blocks) != before:
        raise Verdict("flags")
    return lrs_seen(blocks, groups)


# ----------------------------------------------------------------------------- norm-only


def norm_network(kind: int) -> tuple[nn.Module, nn.Module]:
    """(network, its head) of kind 0: batch norm at the top and nested, group norm nested, a
    layer norm before the head; 1: torchvision's ResNet-18 (batch norm in its shortcut branches
    too); 2: no norm layers; 3: a perceptron with batch, group and layer norm in a block and a
    two-layer head; 4: torchvision's MobileNetV3-small; 5: convolutions with group norm at the top
    and batch and layer norm nested, and a head of two layers."""
    torch.manual_seed(kind)
    if kind in (1, 4):
        from torchvision.models import mobilenet_v3_small, resnet18

        if kind == 1:
            model = resnet18(weights=None, num_classes=5)
            return model, model.fc
        model = mobilenet_v3_small(weights=None, num_classes=4)
        return model, model.classifier
    if kind == 2:
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
        return model, model[3]
    if kind == 3:
        block = nn.Sequential(
            nn.Linear(6, 6), nn.BatchNorm1d(6), nn.GroupNorm(2, 6), nn.ReLU(), nn.LayerNorm(6)
        )
        head = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
        return nn.Sequential(nn.Flatten(), block, head), head
    if kind == 5:
        inner = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.Flatten(), nn.LayerNorm(4))
        head = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))
        stem = [nn.Conv2d(3, 4, 3), nn.GroupNorm(4, 4), nn.AdaptiveAvgPool2d(1)]
        return nn.Sequential(*stem, inner, head), head
    inner = nn.Sequential(
        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.GroupNorm(2, 4), nn.ReLU()
    )
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), inner,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LayerNorm(4), nn.Linear(4, 3),
    )  # fmt: skip
    return model, model[7]


def trainable_after(train_only_norm_layers, model: nn.Module, head: nn.Module):
    """Call the student's function; return (1 for each parameter of ``model`` whose
    requires_grad is True after it, 1 for each in the list it returned), or None when it
    returned None; :class:`Verdict` "not-parameters" for anything but parameters, each once."""
    returned = train_only_norm_layers(model, head)
    if returned is None:
        return None
    if isinstance(returned, (torch.Tensor, str, bytes, dict, set)):
        raise Verdict("not-parameters")
    try:
        listed = list(returned)
    except TypeError:
        raise Verdict("not-parameters") from None
    known = {id(p) for p in model.parameters()}
    if len({id(p) for p in listed}) != len(listed) or any(id(p) not in known for p in listed):
        raise Verdict("not-parameters")
    flags = np.asarray([float(p.requires_grad) for p in model.parameters()])
    ids = {id(p) for p in listed}
    return flags, np.asarray([float(id(p) in ids) for p in model.parameters()])


def graded_norm_only(train_only_norm_layers, kind):
    """requires_grad of each parameter of network ``kind`` after the call, then membership of
    each in the returned list."""
    model, head = norm_network(int(kind))
    seen = trainable_after(train_only_norm_layers, model, head)
    return None if seen is None else np.concatenate(seen)


# ----------------------------------------------------------------------------- ascent-step


#: The units of the ascent-step checks, by kind, as the messages write them.
ASCENT_UNITS = ("<w, x>", "relu(<w, x>) + 0.1 <w, x>^2", "log sum exp(w * x)")


def ascent_unit(kind: int, w: torch.Tensor):
    """The unit the ascent-step checks climb (see :data:`ASCENT_UNITS`): kind 0 is a first-layer
    unit before its nonlinearity."""
    if kind == 0:
        return lambda x: (w * x).sum()
    if kind == 1:
        return lambda x: torch.relu((w * x).sum()) + 0.1 * (w * x).sum() ** 2
    return lambda x: torch.logsumexp((w * x).flatten(), 0)


def graded_ascent_step(ascent_step, x, w, kind, lr, radius):
    """Two chained steps of the student's ``ascent_step`` from hidden start ``x`` for the unit
    of ``kind`` with weights ``w``, stacked (2, *x.shape), as a loop would take them."""
    unit = ascent_unit(int(kind), torch.from_numpy(w))
    path = [torch.from_numpy(x)]
    for _ in range(2):
        got = ascent_step(unit, path[-1], float(lr), float(radius))
        if isinstance(got, torch.Tensor) and got.requires_grad:
            raise Verdict("ascent-graph")
        path.append(torch.as_tensor(got, dtype=torch.float64))
    return torch.stack(path[1:])


# ----------------------------------------------------------------------------- overfit-one-batch

#: The overfit check's batch, its optimiser settings, and the loss on it that counts as "almost
#: zero" (a small network memorises 32 noise images at this rate in a tenth of a second).
OVERFIT_IMAGES, OVERFIT_STEPS, OVERFIT_LR = 32, 100, 0.01
OVERFIT_LOSS = 0.05
#: What :func:`overfit_verdict` reports, in order (1: as it should be, 0: not).
OVERFIT_FINDINGS = (
    "one loss per step",
    "the first loss is the untrained model's, measured before any update",
    f"the loss on the batch ends below {OVERFIT_LOSS}",
    "the model's own weights changed",
)


def _loss_value(value) -> float:
    """One loss as a float: a real number or a one-element real tensor; else TypeError."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        return float(value.detach())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    raise TypeError(type(value).__name__)


def overfit_problem(seed: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A fresh small CNN (weights from ``seed``: a 3 x 3 convolution to 8 maps, ReLU, 2 x 2 max
    pooling, a dense layer to 10 classes) and a batch it can only memorise: 32 images of
    uniform noise (N, 1, 16, 16) with random labels (N,)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(OVERFIT_IMAGES, 1, 16, 16, generator=g)
    y = torch.randint(0, 10, (OVERFIT_IMAGES,), generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(512, 10)
    )
    return model, x, y


def _untouched(model: nn.Module, parameters: list) -> bool:
    """Whether ``model`` still computes with its own layers: the same parameters in float32,
    no forward replaced on an instance, no hooks added."""
    now = list(model.parameters())
    return (
        len(now) == len(parameters)
        and all(p is q and p.dtype == torch.float32 for p, q in zip(now, parameters, strict=True))
        and not any("forward" in vars(m) for m in model.modules())
        and not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    )


def overfit_verdict(overfit_one_batch, seed: int, run=None) -> tuple[list[float], dict]:
    """Run ``overfit_one_batch(model, x, y, steps=OVERFIT_STEPS, lr=OVERFIT_LR)`` on
    :func:`overfit_problem` (through ``run(fn, *args, **kwargs)``, by default a plain call) and
    judge it: one 0/1 per :data:`OVERFIT_FINDINGS`, and the numbers behind them (``start``, the
    untrained model's loss; ``first``, the first loss returned; ``after``, the trained model's
    loss on the batch, recomputed here; ``count``, the number of losses). A model that no longer
    computes with its own float32 layers is :class:`Verdict` "overfit-model"."""
    run = run or (lambda fn, *args, **kwargs: fn(*args, **kwargs))
    model, x, y = overfit_problem(seed)
    with torch.no_grad():
        start = F.cross_entropy(model(x), y).item()
    parameters = list(model.parameters())
    before = [p.detach().clone() for p in parameters]
    returned = run(
        overfit_one_batch, model, x.clone(), y.clone(), steps=OVERFIT_STEPS, lr=OVERFIT_LR
    )
    try:
        losses = [_loss_value(loss) for loss in returned]
    except TypeError:
        raise Verdict("not-losses") from None
    if not _untouched(model, parameters):
        raise Verdict("overfit-model")
    with torch.no_grad():
        after = F.cross_entropy(model(x), y).item()
    changed = any(not torch.equal(a, p) for a, p in zip(before, parameters, strict=True))
    first = losses[0] if losses else math.nan
    numbers_seen = {"start": start, "first": first, "after": after, "count": len(losses)}
    verdict = [
        len(losses) == OVERFIT_STEPS,
        abs(first - start) < 1e-4,
        after < OVERFIT_LOSS,
        changed,
    ]
    return [float(v) for v in verdict], numbers_seen


def graded_overfit_one_batch(overfit_one_batch, seed):
    """:func:`overfit_verdict`'s 0/1 findings for the student's function."""
    return overfit_verdict(overfit_one_batch, seed)[0]


# ----------------------------------------------------------------------------- equivariance-gap

#: The functions the equivariance check measures, by code: what each is.
EQUIVARIANCE_FUNCTIONS = (
    "a convolution with circular padding",
    "a convolution with zero padding",
    "a ReLU",
    "a fixed image added to the input (not equivariant)",
    "a 3 x 3 max pooling with stride 1 and circular padding",
)


class _Named:
    """A function that shows as its description (in a check's message) rather than its repr."""

    def __init__(self, fn, description: str) -> None:
        self.fn, self.description = fn, description

    def __call__(self, t):
        return self.fn(t)

    def __repr__(self) -> str:
        return self.description


def equivariance_case(code: int, seed: int) -> tuple:
    """The function of :data:`EQUIVARIANCE_FUNCTIONS` number ``code`` (weights from ``seed``)
    and an image batch x (2, 2, 12, 12) for it, both in float64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 2, 12, 12, generator=g, dtype=torch.float64)
    weight = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64)
    offset = torch.randn(1, 2, 12, 12, generator=g, dtype=torch.float64)

    def circular_conv(t):
        return F.conv2d(F.pad(t, (1, 1, 1, 1), mode="circular"), weight)

    def zero_conv(t):
        return F.conv2d(t, weight, padding=1)

    def circular_pool(t):
        return F.max_pool2d(F.pad(t, (1, 1, 1, 1), mode="circular"), 3, stride=1)

    functions = (circular_conv, zero_conv, torch.relu, lambda t: t + offset, circular_pool)
    return _Named(functions[code], EQUIVARIANCE_FUNCTIONS[code]), x


def graded_equivariance_gap(equivariance_gap, code, seed, dy, dx):
    """The student's gap for the function and image of :func:`equivariance_case`."""
    f, x = equivariance_case(code, seed)
    return equivariance_gap(f, x, dy, dx)
