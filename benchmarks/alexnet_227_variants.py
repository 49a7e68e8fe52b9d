"""Where the 227x227 AlexNet's training step spends its time, and which formulations of the same
network train faster: the diagnosis behind the MFU goal (>= 15% of the dense bf16 peak on an
H100/H200), in one run.

Prints one JSON line with
- ``profile``: the operators (and, on a GPU, the kernels) with the largest share of self time
  (device time on a GPU) over a few training steps of the first variant named, eager or, with
  ``--compile``, compiled (reusing the compilation its timing paid for);
- ``variants``: training images/s and MFU of the paper network and of rewrites that compute the
  same function, each checked against the paper network first (``max_relative_difference``: of
  the logits and of every parameter's gradient, in float32 on the CPU, must be below 1e-4 or the
  run stops):
  - ``conv1_c4`` / ``conv1_c8``: conv1's input and weight zero-padded from 3 to 4 or 8 channels
    (NVIDIA's convolution guide: tensor-core kernels want channel counts divisible by 4 or 8);
  - ``conv1_s2d``: conv1 (11x11, stride 4, 3 channels) as a 3x3 stride-1 convolution over 48
    channels of 4x4 space-to-depth blocks (``models.SpaceToDepthConv2d``; 19% more multiply-adds,
    on zero taps; MFU counts the paper's FLOPs only);
  - ``library_lrn``: the other way round, the model's LRN (``models.LRN``, window sums as a
    matrix product) replaced by ``nn.LocalResponseNorm`` (squares, padding, a 3D average pooling)
    on each half, concatenated: what the matrix product buys;
  - ``split_groups``: each ``groups=2`` convolution as two ordinary convolutions, concatenated;
  - ``dense_groups``: each as one ungrouped convolution with a block-diagonal weight
    (``models.DenseGroupedConv2d``; twice the multiply-adds, but the kernels for ungrouped layers;
    MFU counts the paper's FLOPs only);
  - ``+`` combines rewrites: ``conv1_s2d+dense_groups`` is ``models.AlexNet(fast_convs=True)``.

``--nchw`` keeps the contiguous layout instead of ``channels_last``; ``--compile`` wraps each
model in ``torch.compile`` (``--max-autotune`` lets inductor search kernels, which compiles for
minutes; ``--coordinate-descent`` lets it tune the block sizes of the kernels it writes itself,
LRN's and pooling's among them, which compiles longer); ``--budget-s`` starts no variant after
that many seconds, so that one run fits a device's time limit and still prints its line (each
variant's figures and the profile also go to stderr as soon as they are measured, so a run killed
at the limit keeps them); ``--tiny`` runs a quarter-width network for two steps on the CPU (used
by the tests).
"""

import argparse
import copy
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils import models, train
from course_utils.env import choose_device
from course_utils.throughput import (
    Synthetic,
    device_facts,
    images_per_s,
    mfu,
    peak_tflops,
    train_flops_per_image,
)

REWRITES = ("conv1_c4", "conv1_c8", "conv1_s2d", "library_lrn", "split_groups", "dense_groups")
DEFAULT_VARIANTS = [
    "paper",
    "conv1_c4",
    "conv1_c8",
    "conv1_s2d",
    "library_lrn",
    "split_groups",
    "dense_groups",
    "conv1_s2d+dense_groups",
]


class PaddedInputConv(nn.Module):
    """``conv`` applied to its input zero-padded to ``channels`` channels, with its weight padded
    to match: (N, C, H, W) -> the same output as ``conv``, gradients reach the original weight."""

    def __init__(self, conv: nn.Conv2d, channels: int) -> None:
        super().__init__()
        self.conv, self.pad = conv, (0, 0, 0, 0, 0, channels - conv.in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        weight = F.pad(c.weight, self.pad)
        return F.conv2d(F.pad(x, self.pad), weight, c.bias, c.stride, c.padding, groups=c.groups)


class SplitGroups(nn.Module):
    """A ``groups=2`` convolution as two ordinary convolutions on the two halves of the channels,
    concatenated: (N, C, H, W) -> the same output, through the kernels for ungrouped layers."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        halves = zip(x.chunk(2, dim=1), c.weight.chunk(2), c.bias.chunk(2), strict=True)
        return torch.cat([F.conv2d(h, w, b, c.stride, c.padding) for h, w, b in halves], dim=1)


def recast(conv: nn.Conv2d, formulation: type[nn.Conv2d]) -> nn.Conv2d:
    """``conv`` (its sizes and weights) as a ``formulation`` of it from ``course_utils.models``."""
    new = formulation(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=conv.bias is not None,
    )
    new.load_state_dict(conv.state_dict())
    return new


class LibraryLRN(nn.Module):
    """``lrn`` (a ``models.LRN``) as ``nn.LocalResponseNorm`` (``models.paper_lrn``) applied to each
    of its channel groups and concatenated: the form the course's AlexNet used before its
    matrix-product LRN, (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, lrn: models.LRN) -> None:
        super().__init__()
        self.groups = lrn.groups
        self.module = models.paper_lrn(lrn.size, alpha=lrn.alpha, beta=lrn.beta, k=lrn.k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.module(part) for part in x.chunk(self.groups, dim=1)], dim=1)


def rewrites(variant: str) -> list[str]:
    """The rewrites named in ``variant`` ("paper" for none, or "a+b"); exits on an unknown one."""
    names = [] if variant == "paper" else variant.split("+")
    unknown = set(names) - set(REWRITES)
    if unknown:
        raise SystemExit(f"unknown rewrite {sorted(unknown)}; choose from paper, {REWRITES}")
    return names


def rewrite(model: models.AlexNet, variant: str) -> tuple[models.AlexNet, int]:
    """A copy of ``model`` with the rewrites named in ``variant`` ("paper" or "a+b"), and how many
    layers they replaced."""
    model = copy.deepcopy(model)
    replaced = 0
    for name in rewrites(variant):
        for i, layer in enumerate(model.features):
            new = None
            if name == "conv1_s2d" and i == 0:
                new = recast(layer, models.SpaceToDepthConv2d)
            elif name.startswith("conv1_c") and i == 0:
                new = PaddedInputConv(layer, int(name.removeprefix("conv1_c")))
            elif name.endswith("_groups") and isinstance(layer, nn.Conv2d) and layer.groups == 2:
                if name == "split_groups":
                    new = SplitGroups(layer)
                else:
                    new = recast(layer, models.DenseGroupedConv2d)
            elif name == "library_lrn" and isinstance(layer, models.LRN):
                new = LibraryLRN(layer)
            if new is not None:
                model.features[i], replaced = new, replaced + 1
    return model, replaced


def max_relative_difference(model: nn.Module, other: nn.Module) -> float:
    """Largest |difference| between the two models' logits, and between the gradients of a
    cross-entropy loss for each pair of parameters (in order), each over the largest |value| of
    ``model``'s, in float32 on the CPU: a rewrite must agree going forward and coming back."""
    generator = torch.Generator().manual_seed(1)
    x = 255 * torch.rand(2, 3, 227, 227, generator=generator)
    y = torch.randint(0, 1000, (2,), generator=generator)
    found = []
    for net in (model.cpu().eval(), other.cpu().eval()):
        logits = net(x)
        params = list(net.parameters())
        found.append([logits.detach(), *torch.autograd.grad(F.cross_entropy(logits, y), params)])
    if [t.shape for t in found[0]] != [t.shape for t in found[1]]:
        raise SystemExit("the rewrite changed the network's parameters, not only its arithmetic")
    pairs = zip(*found, strict=True)
    return max(((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item() for a, b in pairs)


def profile(
    model: nn.Module, batch: Synthetic, channels_last: bool, compile: bool, top: int
) -> dict:
    """Shares of self time per operator over ``batch.steps`` training steps (after a warm-up that,
    with ``compile``, compiles or reuses the model's compiled code)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    options = dict(epochs=1, lr=1e-4, channels_last=channels_last, compile=compile, progress=False)
    train.fit(model, batch, **options)
    gpu = next(model.parameters()).is_cuda
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    with torch_profile(activities=activities) as prof:
        train.fit(model, batch, **options)
    CUDA = DeviceType.CUDA
    events = prof.key_averages()
    if gpu:  # kernels carry the device time; each operator's self share is that of its kernels
        kernels = [(e.key, e.self_device_time_total) for e in events if e.device_type == CUDA]
        ops = [(e.key, e.self_device_time_total) for e in events if e.device_type != CUDA]
    else:
        kernels, ops = [], [(e.key, e.self_cpu_time_total) for e in events]
    total = sum(t for _, t in kernels or ops) or 1.0

    def shares(times, width=None):
        ranked = sorted(times, key=lambda item: -item[1])[:top]
        return [[key[:width], round(t / total, 4)] for key, t in ranked if t > 0]

    return {
        "time": "device" if gpu else "cpu",
        "compiled": compile,
        "step_ms": round(total / 1000 / batch.steps, 2),
        "top_ops": shares(ops),
        "top_kernels": shares(kernels, width=120),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="quarter width, CPU, two steps")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    parser.add_argument("--compile", action="store_true", help="wrap the models in torch.compile")
    parser.add_argument("--max-autotune", action="store_true", help="inductor's kernel search")
    parser.add_argument(
        "--coordinate-descent", action="store_true", help="inductor tunes its own kernels' blocks"
    )
    parser.add_argument("--batch", type=int, default=None, help="default 512 on a GPU")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="after this many seconds start no further variant (the first always runs); the rest "
        "are listed as skipped",
    )
    parser.add_argument(
        "--nchw", action="store_true", help="keep the contiguous layout instead of channels_last"
    )
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()
    names = args.variants.split(",")
    for name in names:
        rewrites(name)
    device = torch.device("cpu") if args.tiny else choose_device()
    gpu = device.type == "cuda"
    torch.backends.cudnn.benchmark = True
    if args.max_autotune or args.coordinate_descent:
        import torch._inductor.config as inductor

        inductor.max_autotune = args.max_autotune
        inductor.coordinate_descent_tuning = args.coordinate_descent
    peak = args.peak_tflops or peak_tflops(device)
    batch = args.batch or (512 if gpu else 2 if args.tiny else 4)
    steps = args.steps or (30 if gpu else 2)
    width = 0.25 if args.tiny else 1.0
    channels_last = gpu and not args.nchw

    torch.manual_seed(0)
    paper = models.AlexNet(num_classes=1000, width=width)
    flops = train_flops_per_image(lambda: models.AlexNet(num_classes=1000, width=width), 227)
    x = torch.rand(batch, 3, 227, 227, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    report, variants, skipped = None, [], []

    def progress(what: str, figures) -> None:  # survives a run killed at the device's limit
        print(f"{what}: {json.dumps(figures)}", file=sys.stderr, flush=True)

    def profile_or_error(model: nn.Module) -> dict:  # an error still lets the timings come
        try:
            found = profile(model, Synthetic(x, y, 3), channels_last, args.compile, 15)
        except Exception as exc:
            found = {"error": f"{type(exc).__name__}: {exc}"}
        progress("profile", found)
        return found

    started = time.perf_counter()
    for name in names:
        if variants and args.budget_s is not None and time.perf_counter() - started > args.budget_s:
            skipped.append(name)
            continue
        if args.compile:  # a fresh cache each time: no variant runs into dynamo's recompile limit
            torch._dynamo.reset()
        model, replaced = rewrite(paper, name)
        difference = max_relative_difference(paper, model)
        if difference > 1e-4:
            raise SystemExit(f"{name} does not compute the paper network: {difference:.2e} apart")
        start = time.perf_counter()
        speed = images_per_s(
            model.to(device), Synthetic(x, y, steps), steps, args.compile, channels_last
        )
        variants.append(
            {
                "variant": name,
                "layers_replaced": replaced,
                "max_relative_difference": float(f"{difference:.2e}"),
                "images_per_s": round(speed),
                "mfu": mfu(flops, speed, peak),
                "seconds_with_compilation": round(time.perf_counter() - start, 1),
            }
        )
        progress("variant", variants[-1])
        if len(variants) == 1 and not args.no_profile:  # the model just timed, compiled if asked
            report = profile_or_error(model)
    print(
        json.dumps(
            {
                "benchmark": "alexnet_227_variants",
                **device_facts(device),
                "torch": torch.__version__,
                "channels_last": channels_last,
                "compile": args.compile,
                "max_autotune": args.max_autotune,
                "coordinate_descent": args.coordinate_descent,
                "tiny": args.tiny,
                "batch": batch,
                "steps": steps,
                "peak_tflops": peak,
                "train_gflop_per_image": round(flops / 1e9, 3),
                "profile": report,
                "variants": variants,
                "skipped_over_budget": skipped,
            }
        )
    )


if __name__ == "__main__":
    main()
