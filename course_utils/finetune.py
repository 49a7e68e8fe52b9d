"""From h_S to h_T: the ways to reuse a pretrained network on a target, by block.

A network is seen as a stack of **blocks** (:func:`blocks`): the convolutional stages from the
input up, then the **head**, the classifier tied to the source's labels. What transfer learning
chooses is, per block: keep it frozen, tune it mildly, or start it afresh.

- :func:`freeze` stops a block from learning: no gradients for its parameters, and its batch-norm
  layers keep the running statistics they have (they stay in eval mode even while the rest of
  the network trains).
- :func:`estimate_norm_statistics` recomputes batch norm's running statistics on new images.
- :func:`norm_parameters` lists the scale and shift of every normalisation layer.
- :func:`fit_steps` trains for a number of optimisation steps with ``train.fit``.

The methods of notebook 10 that use them are in ``course_utils.transfer_methods``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from course_utils import train

#: Layers whose scale and shift "norm-only" tuning trains.
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, block) pairs from the input up; the last is the head (the classifier).

    Known networks: ``models.SmallCNN`` (conv1 ... conv6, head), torchvision's ResNets (stem,
    layer1 ... layer4, head) and AlexNet (conv1 ... conv5, fc6, fc7, head).
    """
    from torchvision.models import AlexNet, ResNet

    from course_utils.models import SmallCNN

    if isinstance(model, ResNet):
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        stages = [(f"layer{i}", getattr(model, f"layer{i}")) for i in range(1, 5)]
        return [("stem", stem), *stages, ("head", model.fc)]
    if isinstance(model, SmallCNN):
        return [*_conv_stages(model.features, "conv"), ("head", model.classifier)]
    if isinstance(model, AlexNet):
        fc6, fc7 = model.classifier[:3], model.classifier[3:6]
        return [
            *_conv_stages(model.features, "conv"),
            ("fc6", fc6),
            ("fc7", fc7),
            ("head", model.classifier[6]),
        ]
    raise ValueError(
        f"blocks() knows SmallCNN and torchvision's ResNet and AlexNet, not {type(model).__name__}: "
        "list its blocks yourself as (name, module) pairs, the classifier last"
    )


def _conv_stages(features: nn.Sequential, prefix: str) -> list[tuple[str, nn.Module]]:
    """A Sequential of conv / norm / activation / pooling layers, cut after each activation and
    the pooling that follows it: conv1, conv2, ..."""
    stages, current = [], []
    for layer in features:
        if isinstance(layer, nn.Conv2d) and any(isinstance(m, nn.Conv2d) for m in current):
            stages.append(nn.Sequential(*current))
            current = []
        current.append(layer)
    stages.append(nn.Sequential(*current))
    return [(f"{prefix}{i}", stage) for i, stage in enumerate(stages, 1)]


def block_nodes(model: nn.Module) -> dict[str, str]:
    """{block name: the layer name (for ``features.extract``) of that block's output}, for every
    block below the head; the last one is what the head reads."""
    names = {id(module): name for name, module in model.named_modules()}
    nodes = {}
    for block_name, block in blocks(model)[:-1]:
        if id(block) not in names:  # a stage put together by blocks(): its last layer's output
            block = list(block)[-1]
        nodes[block_name] = names[id(block)]
    if "layer4" in nodes:  # ResNet: the head reads layer4 average-pooled and flattened
        nodes["layer4"] = "flatten"
    return nodes


def _eval_forward(module: nn.Module, _inputs) -> None:
    """Before a frozen batch-norm layer's forward: run it in eval mode (normalise with its
    running statistics and leave them as they are)."""
    module._mode_outside, module.training = module.training, False


def _restore_mode(module: nn.Module, _inputs, _output) -> None:
    module.training = module._mode_outside


def freeze(*modules: nn.Module) -> list:
    """Stop ``modules`` from learning: ``requires_grad=False`` for their parameters, and their
    batch-norm layers computing in eval mode on every call, whatever ``model.train()`` says.
    Returns the hooks; :func:`unfreeze` undoes both."""
    hooks = []
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(False)
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                hooks += [
                    m.register_forward_pre_hook(_eval_forward),
                    m.register_forward_hook(_restore_mode),
                ]
    return hooks


def unfreeze(modules, hooks: list) -> None:
    """Undo :func:`freeze`: parameters learn again, batch norm follows the model's mode."""
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(True)
    for hook in hooks:
        hook.remove()


def norm_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The scale and shift of every normalisation layer of ``model`` (:data:`NORM_LAYERS`)."""
    params = [
        p
        for m in model.modules()
        if isinstance(m, NORM_LAYERS)
        for p in m.parameters(recurse=False)
    ]
    if not params:
        raise ValueError(
            f"{type(model).__name__} has no normalisation layers with a scale and shift "
            "(BatchNorm, GroupNorm, LayerNorm), so norm-only tuning has nothing to train: "
            "use fine-tuning or a linear probe for it"
        )
    return params


def estimate_norm_statistics(model: nn.Module, x: torch.Tensor, *, batch_size: int = 256) -> None:
    """Replace every batch-norm layer's running mean and variance by their averages over the
    batches of images ``x`` (N, C, H, W) (``torch.optim.swa_utils.update_bn``: with one batch,
    the exact mean and variance of ``x``); weights are untouched, the model is left in eval mode."""
    device = next(model.parameters()).device
    batches = [x[start : start + batch_size] for start in range(0, len(x), batch_size)]
    torch.optim.swa_utils.update_bn(batches, model, device=device)
    model.eval()


class _Steps:
    """Exactly ``steps`` batches from ``loader``, passing over it as often as needed."""

    def __init__(self, loader, steps: int) -> None:
        self.loader, self.steps = loader, steps

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        taken = 0
        while taken < self.steps:
            for batch in self.loader:
                yield batch
                taken += 1
                if taken == self.steps:
                    return


@torch.no_grad()
def statistics_shift(model: nn.Module, x: torch.Tensor) -> list[float]:
    """How far images ``x`` (N, C, H, W) move each batch-norm layer's input from the statistics
    it learned: per layer, the mean over channels of |mean on x - running mean| / running std.
    The model and its statistics are left as they were."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    means: list[torch.Tensor] = []

    def record(_module, args) -> None:
        h = args[0]
        means.append(h.mean([d for d in range(h.ndim) if d != 1]))

    hooks = [m.register_forward_pre_hook(record) for m in layers]
    training = model.training
    try:
        model.eval()(x.to(next(model.parameters()).device))
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    return [
        float(((mean - m.running_mean).abs() / (m.running_var + m.eps).sqrt()).mean())
        for mean, m in zip(means, layers, strict=True)
    ]


def fit_steps(model: nn.Module, loader, optimizer, steps: int) -> None:
    """Train with ``train.fit`` for exactly ``steps`` optimisation steps on batches of
    ``loader``, each group's learning rate decaying to zero on a cosine. The model is put in
    ``channels_last`` memory order (faster on CPUs and GPUs)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1; got {steps}")
    for group in optimizer.param_groups:  # a later call starts its own cosine from the top
        group["lr"] = group.get("initial_lr", group["lr"])
    train.fit(
        model,
        _Steps(loader, steps),
        epochs=1,
        optimizer=optimizer,
        scheduler="cosine",
        progress=False,
    )
