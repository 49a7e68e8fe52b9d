"""AlexNet's two-GPU split made explicit: two towers that exchange activations only at conv3 and
at the fully connected layers, placed on two devices when there are two GPUs.

``TwoTowerAlexNet(model)`` takes the weights of a grouped ``models.AlexNet`` (``grouped=True``)
and computes the same function (N, 3, S, S) -> (N, classes) with every grouped convolution
split into one ordinary convolution per tower. ``tower_devices(2)`` says which devices to use.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from course_utils.models import LRN, AlexNet


def tower_devices(wanted: int = 2) -> list[torch.device]:
    """``wanted`` CUDA devices for model parallelism, or the one device there is, said in one line."""
    found = torch.cuda.device_count()
    if found >= wanted:
        return [torch.device("cuda", i) for i in range(wanted)]
    device = torch.device("cuda" if found else "cpu")
    print(
        f"model parallelism asked for {wanted} GPUs and found {found}: every tower runs on {device}"
    )
    return [device] * wanted


def _half(conv: nn.Conv2d, tower: int) -> nn.Conv2d:
    """Tower ``tower``'s share of ``conv``: half of its kernels (and, if grouped, of its inputs)."""
    out = conv.out_channels // 2
    inputs = conv.in_channels // 2 if conv.groups == 2 else conv.in_channels
    half = nn.Conv2d(inputs, out, conv.kernel_size, conv.stride, conv.padding)
    with torch.no_grad():
        half.weight.copy_(conv.weight[tower * out : (tower + 1) * out])
        half.bias.copy_(conv.bias[tower * out : (tower + 1) * out])
    return half


class TwoTowerAlexNet(nn.Module):
    """The grouped AlexNet ``model`` as two towers on ``devices`` (two devices, possibly equal).

    ``self.pairs`` holds one layer per tower for every layer of ``model.features``; before the
    layers whose index is in ``self.exchanges`` each tower gets the maps of both, as the paper's
    GPUs did before conv3.
    """

    def __init__(self, model: AlexNet, devices: list[torch.device] | None = None) -> None:
        super().__init__()
        self.devices = devices or tower_devices(2)
        if len(self.devices) != 2:
            raise ValueError(f"two towers need two devices; got {len(self.devices)}")
        self.exchanges: set[int] = set()
        self.pairs = nn.ModuleList()
        for index, layer in enumerate(model.features):
            if isinstance(layer, nn.Conv2d):
                if layer.groups == 1 and layer.in_channels != 3:
                    self.exchanges.add(index)
                elif layer.groups not in (1, 2):
                    raise ValueError(f"cannot split a convolution with groups={layer.groups}")
                pair = [_half(layer, 0), _half(layer, 1)]
            elif isinstance(layer, LRN) and layer.groups == 2:
                half = copy.deepcopy(layer)
                half.groups = 1
                pair = [half, half]
            elif isinstance(layer, LRN):
                raise ValueError(
                    "this AlexNet normalises across both halves: build it with grouped=True"
                )
            else:
                pair = [layer, layer]
            pair = nn.ModuleList(
                [pair[0].to(self.devices[0]), copy.deepcopy(pair[1]).to(self.devices[1])]
            )
            self.pairs.append(pair)
        self.classifier = copy.deepcopy(model.classifier).to(self.devices[0])
        self.input_size = model.input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d0, d1 = self.devices
        towers = [x.to(d0), x.to(d1)]
        for index, pair in enumerate(self.pairs):
            if index in self.exchanges:  # each GPU receives the other's maps
                towers = [
                    torch.cat([towers[0], towers[1].to(d0)], dim=1),
                    torch.cat([towers[0].to(d1), towers[1]], dim=1),
                ]
            towers = [pair[0](towers[0]), pair[1](towers[1])]
        return self.classifier(torch.cat([towers[0], towers[1].to(d0)], dim=1))
