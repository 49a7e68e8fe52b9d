"""Public checks for notebook 10 (transfer learning): what the student's code does to a network.

Each check builds small networks (``checks.harnesses``), calls the student's function on them and
tests behaviour: the learning rate an optimizer gives each parameter, which parameters have
``requires_grad``, batch norm's running statistics, whether an output carries an autograd graph.
Expected values are computed before the call, from the check's own networks. The functions
giving the right answers and the common mistakes' answers serve the hidden tests too.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn as nn

from course_utils.checks import Mismatch, call_shared, exercise
from course_utils.checks.compare import as_array, expect_array
from course_utils.checks.harnesses import (
    BLOCK_KINDS,
    Verdict,
    feature_backbone,
    inspect_extraction,
    lr_blocks,
    lrs_seen,
    norm_network,
    trainable,
    trainable_after,
)

# --------------------------------------------------------------------------- frozen-features

TRAINING_MODE = (
    "these are the features with batch norm in training mode (each batch normalised by its own "
    "statistics): call backbone.eval() before extracting"
)


def eval_features(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The right answer: a copy of ``backbone`` in eval mode, no gradients, flattened (N, D)."""
    model = copy.deepcopy(backbone).eval()
    with torch.no_grad():
        return model(x).flatten(1)


def training_mode_features(backbone: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The slip: each batch through a copy of ``backbone`` in training mode, (N, D)."""
    model = copy.deepcopy(backbone).train()
    with torch.no_grad():
        return torch.cat(
            [model(x[i : i + batch_size]).flatten(1) for i in range(0, len(x), batch_size)]
        )


#: (images, batch size, backbone seed, dropout): the last batch of the second has one image, and
#: the last case is one image (where .squeeze() would drop the batch dimension).
FEATURE_CASES = [(10, 4, 4, False), (9, 4, 9, False), (10, 10, 10, False), (10, 5, 1, True)]
FEATURE_CASES += [(1, 4, 7, False)]


@exercise("frozen-features", "frozen_features")
def check_frozen_features(frozen_features) -> str:
    for n, batch_size, seed, dropout in FEATURE_CASES:
        x = torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
        backbone = feature_backbone(seed, dropout=dropout)
        expected = eval_features(backbone, x)
        slips = {} if dropout else {TRAINING_MODE: training_mode_features(backbone, x, batch_size)}
        what = f"frozen_features(backbone{' with dropout' if dropout else ''}, x {tuple(x.shape)}, batch_size={batch_size})"
        try:
            got = inspect_extraction(
                lambda b=backbone, x=x, size=batch_size: call_shared(
                    frozen_features, "frozen_features", b, x.clone(), batch_size=size
                ),
                backbone,
                batch_size,
            )
        except Verdict as verdict:
            raise Mismatch(f"{what}: {verdict}") from None
        if tuple(getattr(got, "shape", ())) == (n, 6, 1, 1):
            raise Mismatch(
                f"{what}: got shape {(n, 6, 1, 1)}; flatten each image's features: .flatten(1)"
            )
        if dropout and tuple(getattr(got, "shape", ())) == tuple(expected.shape):
            if not np.allclose(as_array(got, what, (n, 6)), expected, atol=1e-5, rtol=1e-4):
                raise Mismatch(
                    f"{what}: not the eval-mode features: dropout was active, so the backbone ran in training mode: call backbone.eval()"
                )
        expect_array(got, expected, what=what, atol=1e-5, rtol=1e-4, slips=slips)
    return (
        f"eval-mode features on {len(FEATURE_CASES)} backbones (dropout in one, a last batch of one "
        "image in another, a single image in a third), in batches, no graph, statistics and "
        "weights untouched"
    )


# --------------------------------------------------------------------------- lr-groups


def rule_lrs(
    blocks, head_lr: float, decay: float, *, skip_empty: bool = True, reverse: bool = False
) -> np.ndarray:
    """The learning rate of every parameter of ``blocks`` (0 for frozen ones) by the rule: the
    head gets head_lr and each trainable block below it ``decay`` times the one above.
    ``skip_empty=False`` / ``reverse=True`` give the two common slips."""
    lr, per_block = None, {}
    for block in blocks if reverse else blocks[::-1]:
        if any(p.requires_grad for p in block.parameters()) or not skip_empty:
            lr = head_lr if lr is None else lr * decay
        per_block[id(block)] = lr
    return np.asarray(
        [per_block[id(b)] if p.requires_grad else 0.0 for b in blocks for p in b.parameters()]
    )


def lr_slips(blocks, head_lr: float, decay: float) -> dict[str, np.ndarray]:
    """What the common mistakes give: explanation -> the learning rate of each parameter."""
    return {
        "the head should get head_lr and the blocks below it less; here the first block got "
        "head_lr: walk the blocks from the last (the head) down": rule_lrs(
            blocks, head_lr, decay, reverse=True
        ),
        "a block without trainable parameters (a ReLU, a frozen block) took a step of decay "
        "here: skip it, only blocks that train count": rule_lrs(
            blocks, head_lr, decay, skip_empty=False
        ),
    }


LR_CASES = [
    ((0, 1, 0, 0, 4), 0.01, 0.1),
    ((2, 3, 0, 4), 0.1, 0.5),
    ((0, 4), 0.01, 0.1),
    ((0, 0, 1, 2, 0, 4), 0.003, 1 / 2.6),
]


@exercise("lr-groups", "layerwise_param_groups")
def check_lr_groups(layerwise_param_groups) -> str:
    for codes, head_lr, decay in LR_CASES:
        blocks = lr_blocks(codes)
        expected, slips, before = (
            rule_lrs(blocks, head_lr, decay),
            lr_slips(blocks, head_lr, decay),
            trainable(blocks),
        )
        what = f"layerwise_param_groups([{', '.join(BLOCK_KINDS[c] for c in codes)}], head_lr={head_lr:g}, decay={decay:.3g})"
        groups = call_shared(
            layerwise_param_groups, "layerwise_param_groups", list(blocks), head_lr, decay
        )
        try:
            if trainable(blocks) != before:
                raise Verdict("flags")
            got = lrs_seen(blocks, groups)
        except Verdict as verdict:
            raise Mismatch(f"{what}: {verdict}") from None
        expect_array(
            got,
            expected,
            what=f"{what}, the lr of each parameter (0: in no group)",
            atol=1e-12,
            rtol=1e-6,  # a rate computed in float32 (torch.tensor(decay) ** k) is right too
            slips=slips,
        )
    return f"learning rates of every parameter right on {len(LR_CASES)} networks (frozen and parameter-free blocks included)"


# --------------------------------------------------------------------------- norm-only

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def norm_only_flags(
    model: nn.Module,
    head: nn.Module,
    *,
    types=NORM_TYPES,
    head_trains: bool = True,
    nested: bool = True,
) -> np.ndarray:
    """1 for each parameter of ``model`` that norm-only tuning trains (the scale and shift of
    every layer of ``types``, and the head's), else 0; the keywords give the common slips."""
    modules = model.modules() if nested else model.children()
    chosen = {id(p) for m in modules if isinstance(m, types) for p in m.parameters(recurse=False)}
    if head_trains:
        chosen |= {id(p) for p in head.parameters()}
    return np.asarray([float(id(p) in chosen) for p in model.parameters()])


def norm_slips(model: nn.Module, head: nn.Module) -> dict[str, np.ndarray]:
    """What the common mistakes give: explanation -> requires_grad of each parameter."""
    batch, group, layer = nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm
    return {
        "the other layers still train: first set requires_grad_(False) on every parameter of "
        "the model": np.ones(sum(1 for _ in model.parameters())),
        "the head must train too (its weights are new)": norm_only_flags(
            model, head, head_trains=False
        ),
        "norm layers inside blocks were missed: visit every module with model.modules(), not "
        "only model.children()": norm_only_flags(model, head, nested=False),
        "only BatchNorm layers train here; GroupNorm and LayerNorm have a scale and shift too": norm_only_flags(
            model, head, types=batch
        ),
        "GroupNorm layers have a scale and shift too": norm_only_flags(
            model, head, types=(batch, layer)
        ),
        "LayerNorm layers have a scale and shift too": norm_only_flags(
            model, head, types=(batch, group)
        ),
    }


NORM_CASES = {
    0: "batch, group and layer norm, some nested in blocks",
    3: "a perceptron with a two-layer head",
    1: "torchvision ResNet-18",
    2: "no norm layers",
}


@exercise("norm-only", "train_only_norm_layers")
def check_norm_only(train_only_norm_layers) -> str:
    for kind, name in NORM_CASES.items():
        model, head = norm_network(kind)
        expected, slips = norm_only_flags(model, head), norm_slips(model, head)
        what = f"train_only_norm_layers(<{name}>, head)"
        try:
            seen = trainable_after(
                lambda m, h: call_shared(train_only_norm_layers, "train_only_norm_layers", m, h),
                model,
                head,
            )
        except Verdict as verdict:
            raise Mismatch(f"{what}: {verdict}") from None
        flags, listed = seen
        expect_array(
            flags,
            expected,
            what=f"{what}, requires_grad of each parameter (1: trains)",
            atol=0.1,
            rtol=0,
            slips=slips,
        )
        if not np.array_equal(listed, flags):
            raise Mismatch(
                f"{what}: the returned list should hold exactly the {int(flags.sum())} parameters that "
                f"train; it holds {int((listed * flags).sum())} of them and {int((listed > flags).sum())} others"
            )
    return f"exactly the norm layers' scale and shift and the head train, on {len(NORM_CASES)} networks (ResNet-18 and one without norm layers among them)"
