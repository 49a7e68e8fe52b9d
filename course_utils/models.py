"""Models of the course, in torchvision's style: ``features`` / ``classifier``, keyword-only options."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _bad_input(model: str, expected: str, x: torch.Tensor, hint: str = "") -> ValueError:
    """The error for an input ``x`` that ``model`` cannot take, with ``hint`` on how to fix it;
    a single image (3 dimensions) is told to add the batch dimension."""
    hints = ["one image? add the batch dimension: x.unsqueeze(0)"] if x.ndim == 3 else []
    hints += [hint] if hint else []
    return ValueError(
        f"{model} expects {expected}; got {tuple(x.shape)}"
        + (f" ({'; '.join(hints)})" if hints else "")
    )


def check_num_classes(num_classes) -> None:
    """ValueError unless ``num_classes`` is a whole number >= 1 (one output per class)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(
            f"num_classes is the number of outputs, one per class, a whole number >= 1; got "
            f"{num_classes!r}"
        )


class LeNet5(nn.Module):
    """LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to document
    recognition"), for (N, 1, 32, 32) inputs.

    C1 conv 6@5x5 -> 6x28x28, S2 pool -> 6x14x14, C3 conv 16@5x5 -> 16x10x10, S4 pool -> 16x5x5,
    C5 conv 120@5x5 -> 120x1x1, F6 fully connected 84, output 10: 61,706 parameters.

    Differences from the paper, all common in modern re-implementations: C3 connects every S2 map
    (the paper's sparse connection table gives 1,516 weights instead of 2,416); S2/S4 are plain
    average (or max) pooling without the paper's trainable coefficient and bias; the activation
    is ``tanh`` (the paper's scaled 1.7159 tanh(2x/3)) or ``relu``; the output layer is a linear
    layer trained with cross-entropy instead of Euclidean RBF units.
    """

    def __init__(
        self, *, num_classes: int = 10, activation: str = "tanh", pooling: str = "avg"
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        activations, poolings = (
            {"tanh": nn.Tanh, "relu": nn.ReLU},
            {"avg": nn.AvgPool2d, "max": nn.MaxPool2d},
        )
        if activation not in activations:
            raise ValueError(f"activation must be 'tanh' or 'relu'; got {activation!r}")
        if pooling not in poolings:
            raise ValueError(f"pooling must be 'avg' or 'max'; got {pooling!r}")
        act, pool = activations[activation], poolings[pooling]
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5),
            act(),
            pool(2, 2),  # C1, S2
            nn.Conv2d(6, 16, 5),
            act(),
            pool(2, 2),  # C3, S4
            nn.Conv2d(16, 120, 5),
            act(),  # C5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(120, 84), act(), nn.Linear(84, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 32, 32):
            hint = (
                "pad MNIST's 28x28 digits by 2 pixels: datasets.pad_to(x, 32)"
                if tuple(x.shape[-2:]) == (28, 28)
                else ""
            )
            raise _bad_input("LeNet5", "input (N, 1, 32, 32)", x, hint)
        return self.classifier(self.features(x))


#: Convolutions of AlexNet as (name, out_channels, kernel, stride, padding, grouped, pool after).
#: ``grouped`` marks the layers whose kernels saw only their own GPU's half of the input.
ALEXNET_CONVS = {
    227: [
        ("conv1", 96, 11, 4, 0, False, True),
        ("conv2", 256, 5, 1, 2, True, True),
        ("conv3", 384, 3, 1, 1, False, False),
        ("conv4", 384, 3, 1, 1, True, False),
        ("conv5", 256, 3, 1, 1, True, True),
    ],
    32: [
        ("conv1", 64, 5, 1, 2, False, True),
        ("conv2", 192, 5, 1, 2, True, True),
        ("conv3", 384, 3, 1, 1, False, False),
        ("conv4", 256, 3, 1, 1, True, False),
        ("conv5", 256, 3, 1, 1, True, True),
    ],
}
#: Hidden units of fc6 and fc7 for each input size.
ALEXNET_HIDDEN = {227: 4096, 32: 1024}


def paper_lrn(
    size: int = 5, *, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0
) -> nn.LocalResponseNorm:
    """LRN by the paper's formula, b = a / (k + alpha * sum of a^2 over ``size`` neighbouring
    channels)^beta (defaults: the paper's constants), as ``nn.LocalResponseNorm``, which divides
    its ``alpha`` by ``size`` (a mean instead of a sum): hence ``alpha * size``."""
    return nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)


def lrn_band(channels: int, size: int = 5, groups: int = 1, device=None) -> torch.Tensor:
    """(C, C) matrix of ones where input channel j (row) falls in output channel i's window of
    ``size`` channels (j from i - size // 2 to i + (size - 1) // 2, as ``nn.LocalResponseNorm``)
    within the same one of ``groups`` equal slices, zeros elsewhere: a 1D convolution across
    channels with a kernel of ones, as a matrix (notebook 01)."""
    if channels % groups:
        raise ValueError(
            f"LRN over {groups} groups needs channels divisible by {groups}; got {channels}"
        )
    target = torch.arange(channels, device=device)
    source = target[:, None]
    per_group = channels // groups
    return (
        (source >= target - size // 2)
        & (source <= target + (size - 1) // 2)
        & (source // per_group == target // per_group)
    ).float()


class LRN(nn.Module):
    """The paper's local response normalisation, b = a / (k + alpha * sum of a^2 over ``size``
    neighbouring channels)^beta, with each of ``groups`` equal slices of the channels normalised
    on its own (on two GPUs, each one normalised only the maps it held): (N, C, H, W) ->
    (N, C, H, W) in the input's dtype.

    The window sums are one matrix product: the squares, channels last (N, H, W, C), times
    ``lrn_band`` (C, C). It computes what ``paper_lrn`` does to each slice, and its backward pass
    is a matrix product too, where ``nn.LocalResponseNorm`` pads and pools (notebook 11 times
    the two). It squares sqrt(alpha) * a rather than a, so float16 (autocast on older GPUs) holds
    the squares up to |a| of about 10,000 instead of 256, and runs the arithmetic around the
    product in at least float32."""

    def __init__(
        self,
        size: int = 5,
        *,
        alpha: float = 1e-4,
        beta: float = 0.75,
        k: float = 2.0,
        groups: int = 1,
    ) -> None:
        super().__init__()
        if alpha < 0:
            raise ValueError(f"LRN needs alpha >= 0 (it scales a sum of squares); got {alpha}")
        if size < 1:
            raise ValueError(f"LRN sums over a window of size >= 1 channels; got size={size}")
        self.size, self.alpha, self.beta, self.k, self.groups = size, alpha, beta, k, groups

    def extra_repr(self) -> str:
        return (
            f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, groups={self.groups}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        band = lrn_band(x.shape[1], self.size, self.groups, x.device)
        squares = (x * self.alpha**0.5).square().movedim(1, -1)  # alpha * a^2
        window = (squares @ band.to(squares.dtype)).movedim(-1, 1)
        window = window.to(torch.promote_types(window.dtype, torch.float32))
        return (x * (self.k + window).pow(-self.beta)).to(x.dtype)


class SpaceToDepthConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` with stride s computed as a stride-1 convolution on s x s space-to-depth
    blocks: the input (N, C, H, W) is cut into s x s blocks whose pixels become channels,
    (N, C*s*s, H/s, W/s), and the k x k kernel, zero-padded to a multiple of s, is cut the same way
    into ceil(k/s)^2 taps. The same output, weights and gradients as ``nn.Conv2d`` (up to rounding),
    for a few more multiply-adds on the zero taps (AlexNet's conv1: 3 channels 11x11/4 become 48
    channels 3x3/1), in the shape GPU tensor cores are built for: the trick TPU and MLPerf ResNets
    use for their first layer. Square kernel, stride and padding in numbers; no groups or dilation.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        square = not isinstance(self.padding, str) and all(
            len(set(pair)) == 1 for pair in (self.stride, self.kernel_size, self.padding)
        )
        plain = self.groups == 1 and self.dilation == (1, 1) and self.padding_mode == "zeros"
        if not (square and plain):
            raise ValueError(
                "space-to-depth needs a square kernel, stride and padding (numbers), zero "
                "padding, no dilation and no groups; use nn.Conv2d for this layer"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (k, _), (s, _), (p, _) = self.kernel_size, self.stride, self.padding
        taps = math.ceil(k / s)
        height, width = x.shape[2:]
        blocks_h = (height + 2 * p - k) // s + taps  # output rows + the taps past the last one
        blocks_w = (width + 2 * p - k) // s + taps
        x = F.pad(x, (p, blocks_w * s - width - p, p, blocks_h * s - height - p))
        x = F.pixel_unshuffle(x, s)  # N, C*s*s, blocks_h, blocks_w: channels (c, row, column)
        w = F.pad(self.weight, (0, taps * s - k, 0, taps * s - k))
        w = F.pixel_unshuffle(w, s)  # out, C*s*s, taps, taps: cut the same way
        if self.weight.is_contiguous(memory_format=torch.channels_last):  # the model's layout
            x = x.contiguous(memory_format=torch.channels_last)
            w = w.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, w, self.bias)


class DenseGroupedConv2d(nn.Conv2d):
    """A grouped ``nn.Conv2d`` computed as one ungrouped convolution whose weight is block-diagonal
    (zeros between the groups): the same output, weights and gradients, for ``groups`` times the
    multiply-adds, through the kernels for ungrouped layers, which on a GPU more than make up for
    them (``benchmarks/alexnet_227_variants.py``). Zero padding only."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError(
                f"a block-diagonal convolution pads with zeros; got padding_mode="
                f"{self.padding_mode!r}: use nn.Conv2d for this layer"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = self.weight.chunk(self.groups)  # each (out / groups, in / groups, k, k)
        zeros = torch.zeros_like(blocks[0])
        weight = torch.cat(
            [
                torch.cat([block if j == i else zeros for j in range(self.groups)], dim=1)
                for i, block in enumerate(blocks)
            ]
        )
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation)


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky, Sutskever, Hinton 2012, "ImageNet classification with deep
    convolutional neural networks"), for (N, 3, 227, 227) inputs, or a CIFAR-sized version for
    (N, 3, 32, 32) with ``input_size=32``.

    227: conv1 96@11x11/4 -> 96x55x55, LRN, max pool 3/2 -> 27; conv2 256@5x5 -> 27, LRN, pool -> 13;
    conv3 384@3x3, conv4 384@3x3, conv5 256@3x3 -> 13, pool -> 256x6x6; fc6 4096, fc7 4096 (dropout
    0.5 before each), fc8 ``num_classes``: 60,965,224 parameters with ``grouped=True``.
    ``grouped=True`` gives conv2, conv4 and conv5 ``groups=2``: each half of the kernels sees
    only the half of the maps computed on its own GPU, as in the paper's two-GPU network, and LRN
    normalises each half of the maps on its own (``LRN(groups=2)``).

    32: the same sequence of ideas with 5x5/1 then 3x3 kernels (64-192-384-256-256), three
    overlapping poolings (32 -> 15 -> 7 -> 3) and fc6/fc7 of 1024; ``width`` scales every layer.

    Differences from the paper: a 227x227 input (the paper says 224, which does not give 55x55,
    see notebook 07); He (ReLU) or Glorot (tanh) initialisation with zero biases instead of the
    paper's N(0, 0.01) weights and biases of 1, which train slowly without its hand-tuned schedule;
    the two GPUs are grouped convolutions on one device unless placed by ``course_utils.parallel``;
    dropout sits where torchvision puts it, on the inputs of fc6 and fc7, while the paper applies
    it "in the first two fully-connected layers" (section 4.2), on the outputs of fc6 and fc7, so
    before fc7 and fc8. ``fast_convs=True`` computes conv1 (stride 4) as a ``SpaceToDepthConv2d`` and the grouped
    convolutions as ``DenseGroupedConv2d``: the same function, weights and ``state_dict``, in the
    shapes GPU tensor cores run fastest (the 227 network trains 1.5x faster on an H200,
    ``benchmarks/alexnet_227_variants.py``); on a CPU the extra multiply-adds make it slower.
    Ablation switches: ``lrn``, ``overlapping_pool`` (False: 2x2/2 pooling, same output sizes),
    ``dropout`` (0 turns it off), ``activation`` ("relu" or "tanh") and ``remove``: a subset of
    {"conv3", "conv4", "fc6", "fc7"}; the next layer then takes the removed layer's input.
    """

    def __init__(
        self,
        *,
        input_size: int = 227,
        num_classes: int = 1000,
        width: float = 1.0,
        grouped: bool = True,
        lrn: bool = True,
        overlapping_pool: bool = True,
        dropout: float = 0.5,
        activation: str = "relu",
        remove: tuple[str, ...] | list[str] = (),
        fast_convs: bool = False,
    ) -> None:
        super().__init__()
        if input_size not in ALEXNET_CONVS:
            raise ValueError(
                f"input_size must be 227 (the paper's network) or 32 (CIFAR); got {input_size}"
            )
        removable = {"conv3", "conv4", "fc6", "fc7"}
        if not set(remove) <= removable:
            raise ValueError(
                f"remove may name {sorted(removable)}; got {sorted(set(remove) - removable)}"
            )
        if activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh'; got {activation!r}")
        if width <= 0:
            raise ValueError(f"width scales every layer and must be positive; got {width}")
        check_num_classes(num_classes)
        self.input_size = input_size
        act = nn.ReLU if activation == "relu" else nn.Tanh
        layers: list[nn.Module] = []
        channels = 3
        for name, out, kernel, stride, padding, is_grouped, pool in ALEXNET_CONVS[input_size]:
            if name in remove:
                continue
            out = max(2, round(out * width / 2) * 2)
            groups = 2 if grouped and is_grouped else 1
            conv = nn.Conv2d
            if fast_convs and stride > 1:
                conv = SpaceToDepthConv2d
            elif fast_convs and groups > 1:
                conv = DenseGroupedConv2d
            layers += [conv(channels, out, kernel, stride, padding, groups=groups), act()]
            if lrn and name in ("conv1", "conv2"):
                layers.append(LRN(groups=2 if grouped else 1))
            if pool:
                layers.append(nn.MaxPool2d(3, 2) if overlapping_pool else nn.MaxPool2d(2, 2))
            channels = out
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, 3, input_size, input_size)).numel()
        hidden = max(2, round(ALEXNET_HIDDEN[input_size] * width))
        head: list[nn.Module] = [nn.Flatten()]
        for name in ("fc6", "fc7"):
            if name in remove:
                continue
            if dropout:
                head.append(nn.Dropout(dropout))
            head += [nn.Linear(flat, hidden), act()]
            flat = hidden
        head.append(nn.Linear(flat, num_classes))
        self.classifier = nn.Sequential(*head)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                if activation == "relu":
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                else:
                    nn.init.xavier_normal_(module.weight, gain=nn.init.calculate_gain("tanh"))
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = self.input_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size):
            hint = ""
            if size == 227 and tuple(x.shape[-2:]) == (32, 32):
                hint = "for 32x32 images (CIFAR-10) build the CIFAR-sized AlexNet(input_size=32)"
            elif size == 227 and tuple(x.shape[-2:]) != (227, 227):
                hint = "resize or crop to 227x227: 224 does not fit 11x11 kernels at stride 4"
            elif size == 32 and tuple(x.shape[-2:]) == (227, 227):
                hint = "for 227x227 images build the paper's AlexNet(input_size=227)"
            raise _bad_input("this AlexNet", f"input (N, 3, {size}, {size})", x, hint)
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """A small VGG-style network for (N, 3, 32, 32) images: six 3x3 convolutions with batch norm
    and ReLU (32-32-64-64-128-128 channels, max pooling after the 2nd, 4th and 5th), global
    average pooling to 128 features, and one linear classifier; 288,746 parameters for 10 classes.

    The offline source network for transfer learning (``course_utils.transfer``): ``features``
    maps images to (N, 128, 1, 1); ``classifier`` is the only layer tied to the source's classes.
    """

    def __init__(self, *, num_classes: int = 10) -> None:
        super().__init__()
        check_num_classes(num_classes)
        layers: list[nn.Module] = []
        channels = 3
        for out, pool in (
            (32, False),
            (32, True),
            (64, False),
            (64, True),
            (128, True),
            (128, False),
        ):
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
            ]
            if pool:
                layers.append(nn.MaxPool2d(2))
            channels = out
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(_colour_images(x)))


@torch.fx.wrap  # kept whole in traced graphs, so torchvision's feature extractor can trace SmallCNN
def _colour_images(x: torch.Tensor) -> torch.Tensor:
    """``x`` itself when it is a batch of colour images (N, 3, H, W); else the error that says so."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise _bad_input("SmallCNN", "colour images (N, 3, H, W)", x)
    return x
