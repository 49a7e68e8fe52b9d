"""Why the course reads networks in channels-last on a CPU (``env.read_in_fast_layout``, used by
``invariance.curves`` and ``features.extract``): max pooling's time in each memory layout at the
shapes notebook 09's networks pool, and notebook 09's translation measurement (each shipped
"plain" network on shifted test images, read at conv1, conv4 and the pooled features) read in
each layout, with the largest difference between the two readings. Prints one JSON line.

    python benchmarks/channels_last_reading.py [--images 150] [--shifts 17] [--seeds 3]
"""

import argparse
import json
import os
import time

os.environ.setdefault("COURSE_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from course_utils import datasets, invariance, invariance_nets  # noqa: E402
from course_utils.env import threads  # noqa: E402

LAYOUTS = {"default": torch.contiguous_format, "channels_last": torch.channels_last}
LAYERS = ["conv1", "conv4", "gap"]


def pooling_ms(images: int, repeats: int = 20) -> dict:
    """Milliseconds per 2x2 max pooling of ShapeNet's three pooled maps, per layout."""
    times = {}
    for channels, side in ((16, 32), (32, 16), (64, 8)):
        x = torch.randn(images, channels, side, side)
        for name, layout in LAYOUTS.items():
            xl = x.contiguous(memory_format=layout)
            F.max_pool2d(xl, 2)
            start = time.perf_counter()
            for _ in range(repeats):
                F.max_pool2d(xl, 2)
            times[f"{channels}x{side}x{side} {name}"] = round(
                1000 * (time.perf_counter() - start) / repeats, 3
            )
    return times


def read_shifts(nets, x, shifts, layout) -> tuple[float, list]:
    """Seconds to read every network on x shifted by each amount, in ``layout``; the readings."""
    readings = []
    start = time.perf_counter()
    for net in nets:
        for amount in shifts:
            moved = invariance.shift(x, amount, 0, mode="circular")
            readings.append(
                invariance.layer_features(net, moved.contiguous(memory_format=layout), LAYERS)
            )
    return time.perf_counter() - start, readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=150, help="test images (fast mode: 150)")
    parser.add_argument("--shifts", type=int, default=17, help="shifts 0..n-1 pixels")
    parser.add_argument("--seeds", type=int, default=3, choices=(1, 2, 3))
    args = parser.parse_args()
    torch.set_num_threads(threads())  # COURSE_THREADS, else every core
    nets = [invariance_nets.load("plain", seed) for seed in invariance_nets.SEEDS[: args.seeds]]
    x, y = datasets.shapes10(args.images, seed=1, centre=0.15)
    shifts = list(range(args.shifts))
    seconds, readings = {}, {}
    for name, layout in LAYOUTS.items():
        read_shifts(nets[:1], x[:8], [0], layout)  # warm-up
        seconds[name], readings[name] = read_shifts(nets, x, shifts, layout)
    difference = max(
        (invariance.relative_change(a[key], b[key]).max().item())
        for a, b in zip(readings["default"], readings["channels_last"], strict=True)
        for key in LAYERS
    )
    start = time.perf_counter()
    for net in nets:
        invariance.curves(
            net, x, y, lambda im, s: invariance.shift(im, s, 0, mode="circular"), shifts, LAYERS
        )
    curves_seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "benchmark": "channels_last_reading",
                "threads": torch.get_num_threads(),
                "images": args.images,
                "shifts": args.shifts,
                "networks": len(nets),
                "max_pool_ms": pooling_ms(args.images),
                "read_seconds": {k: round(v, 3) for k, v in seconds.items()},
                "default_over_channels_last": round(
                    seconds["default"] / seconds["channels_last"], 2
                ),
                "largest_relative_difference": difference,
                "curves_seconds": round(curves_seconds, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
