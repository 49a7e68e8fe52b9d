"""AlexNet training throughput: the CIFAR-sized and the 227x227 network, on synthetic batches
already on the device and through the real input pipeline (the device-resident loader with
random crops and flips), the ratio of the two, and the model FLOP utilisation (MFU).

Prints one JSON line (and each model's figures to stderr as soon as they are measured, so a
device call cut off at its limit keeps them). Each model reports ``synthetic_images_per_s``,
``pipeline_images_per_s``, ``feed_overhead`` (1 - pipeline / synthetic, goal <= 5%),
``train_gflop_per_image`` (forward + backward of the network with ``nn.Conv2d`` layers, counted
by ``torch.utils.flop_counter`` with grouped weight gradients corrected, see
``conv_backward_flops``) and ``mfu`` (achieved FLOP/s over the device's dense peak at the
training precision; null where the peak is unknown, e.g. CPUs). The 227x227 network trains with
``fast_convs=True`` (the same function, computed in the shapes tensor cores prefer; see
``alexnet_227_variants.py``), ``--plain-convs`` times it with ``nn.Conv2d`` layers.
Goals on an H100/H200: CIFAR-sized >= 100,000 images/s at bf16; 227x227 MFU >= 15%.

``--tiny`` runs a few small steps on CPU (used by the test suite); ``--compile`` adds
``torch.compile``; ``--peak-tflops`` overrides the peak table.
"""

import argparse
import contextlib
import functools
import io
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from course_utils import models, train
from course_utils.env import choose_device
from course_utils.loader import DeviceLoader

#: Dense bf16 (fp16 where bf16 is missing) tensor-core peaks in TFLOP/s, from the vendor data sheets.
PEAK_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200 NVL", 835.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("GH200", 989.4),
    ("A100", 312.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("T4", 65.0),
    ("V100", 125.0),
]


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_TFLOPS if key in name), None)


def device_facts(device: torch.device) -> dict:
    """The device's name and the training precision ``fit`` uses on it, for the JSON line."""
    dtype, _ = train.precision(device)
    return {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)",
        "precision": str(dtype).replace("torch.", "") if dtype else "float32",
    }


def mfu(flops_per_image: float, images_per_second: float, peak: float | None) -> float | None:
    """Achieved FLOP/s over the peak (TFLOP/s); None where the peak is unknown."""
    return round(flops_per_image * images_per_second / (peak * 1e12), 4) if peak else None


def conv_backward_flops(
    grad_out_shape,
    x_shape,
    w_shape,
    _bias,
    _stride,
    _padding,
    _dilation,
    transposed,
    _output_padding,
    _groups,
    output_mask,
    out_shape,
) -> int:
    """FLOPs of ``aten.convolution_backward``, given the shapes ``torch.utils.flop_counter`` passes.

    Each gradient that ``output_mask`` asks for (input, weight) costs what the forward
    convolution costs; ``w_shape`` (out, in / groups, kh, kw) already carries the group split.
    torch's own formula counts a grouped convolution's weight gradient ``groups`` times over,
    which inflates the 227x227 AlexNet's training FLOPs by a fifth (conv2, conv4 and conv5 have
    ``groups=2``).
    """
    if transposed:
        raise NotImplementedError("transposed convolutions are not counted here")
    return sum(output_mask[:2]) * conv_flop_count(x_shape, w_shape, grad_out_shape)


def train_flops_per_image(model_fn, size: int) -> float:
    """FLOPs of one forward and backward pass per image, counted on the CPU: the model's own, so
    LRN is left out (elementwise work, like ReLU; ``models.LRN`` computes its window sums as a
    matrix product the counter would otherwise count, mostly multiplications by zero)."""
    model = model_fn()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, models.LRN):
                setattr(parent, name, nn.Identity())
    x, y = torch.randn(2, 3, size, size), torch.randint(0, 10, (2,))
    fixes = {torch.ops.aten.convolution_backward: conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=fixes) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops() / 2


def images_per_s(model, batches, steps: int, compile: bool, channels_last: bool = True) -> float:
    """Images per second of ``train.fit`` over ``steps`` batches (after a warm-up epoch); ``fit``
    reads its metrics with ``.item()`` at the end of the epoch, which waits for the GPU."""
    options = dict(epochs=1, lr=1e-4, compile=compile, channels_last=channels_last, progress=False)
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        train.fit(model, batches, **options)
        start = time.perf_counter()
        train.fit(model, batches, **options)
        seconds = time.perf_counter() - start
    return steps * batches.batch_size / seconds


class Synthetic:
    """``steps`` copies of one batch already on the device (no data work at all)."""

    def __init__(self, x, y, steps):
        self.x, self.y, self.steps, self.batch_size = x, y, steps, len(y)

    def __len__(self):
        return self.steps

    def __iter__(self):
        return ((self.x, self.y) for _ in range(self.steps))


def measure(name, options, size, batch, steps, device, compile, peak) -> dict:
    """Figures of ``models.AlexNet(**options)``; its FLOPs are those of its ``nn.Conv2d`` form."""
    model_fn = functools.partial(models.AlexNet, **options)
    torch.manual_seed(0)
    n = batch * steps
    x = torch.rand(n, 3, size, size, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    synthetic = images_per_s(
        model_fn().to(device), Synthetic(x[:batch], y[:batch], steps), steps, compile
    )
    loader = DeviceLoader(x, y, batch_size=batch, crop_padding=4, flip=True, drop_last=True)
    pipeline = images_per_s(model_fn().to(device), loader, steps, compile)
    flops = train_flops_per_image(functools.partial(model_fn, fast_convs=False), size)
    return {
        "model": name,
        "fast_convs": options.get("fast_convs", False),
        "batch": batch,
        "synthetic_images_per_s": round(synthetic),
        "pipeline_images_per_s": round(pipeline),
        "feed_overhead": round(1 - pipeline / synthetic, 4),
        "train_gflop_per_image": round(flops / 1e9, 3),
        "achieved_tflops": round(flops * synthetic / 1e12, 2),
        "mfu": mfu(flops, synthetic, peak),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few small CPU steps (tests)")
    parser.add_argument("--compile", action="store_true", help="wrap the models in torch.compile")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--ungrouped", action="store_true", help="conv2/4/5 without groups=2")
    parser.add_argument(
        "--batch",
        type=int,
        nargs=2,
        default=None,
        metavar=("CIFAR", "B227"),
        help="batch sizes (default 512 and 512 on a GPU)",
    )
    parser.add_argument(
        "--plain-convs",
        action="store_true",
        help="the 227 network with nn.Conv2d layers instead of fast_convs=True",
    )
    args = parser.parse_args()
    device = torch.device("cpu") if args.tiny else choose_device()
    torch.backends.cudnn.benchmark = True
    peak = args.peak_tflops or peak_tflops(device)
    gpu = device.type == "cuda"
    common = dict(grouped=not args.ungrouped, width=0.25 if args.tiny else 1.0)
    configs = [  # name, input size, AlexNet's options, batch size
        ("cifar_alexnet", 32, dict(input_size=32, num_classes=10), 512 if gpu else 32),
        (
            "alexnet_227",
            227,
            dict(num_classes=1000, fast_convs=not args.plain_convs),
            512 if gpu else 4,
        ),
    ]
    if args.batch:
        configs = [(*config[:3], b) for config, b in zip(configs, args.batch, strict=True)]
    steps = args.steps or (2 if args.tiny else 50 if gpu else 5)
    results = []
    for name, size, options, batch in configs:
        options = {**common, **options}
        results.append(measure(name, options, size, batch, steps, device, args.compile, peak))
        print(f"model: {json.dumps(results[-1])}", file=sys.stderr, flush=True)  # kept if cut off
    print(
        json.dumps(
            {
                "benchmark": "alexnet_throughput",
                **device_facts(device),
                "channels_last": gpu,
                "compile": args.compile,
                "grouped": not args.ungrouped,
                "tiny": args.tiny,
                "peak_tflops": peak,
                "steps": steps,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
