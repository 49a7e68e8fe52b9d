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
import functools
import json
import sys

import torch

from course_utils import models
from course_utils.env import choose_device
from course_utils.loader import DeviceLoader
from course_utils.throughput import (
    Synthetic,
    device_facts,
    images_per_s,
    mfu,
    peak_tflops,
    train_flops_per_image,
)


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
