"""Notebook 02's naive and im2col convolutions against F.conv2d, on a batch of 64 images,
3 -> 64 channels, 32x32, 3x3 kernels, padding 1. Prints one JSON line with ratios to F.conv2d.

The implementations are the instructor solutions of notebooks/02_convolution_2d.ipynb.
"""

import json
import time

import torch
import torch.nn.functional as F

from course_utils import notebooks


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    path = next(p for p in notebooks.notebook_paths() if p.name.startswith("02_"))
    solutions = notebooks.solution_namespace(path)
    torch.manual_seed(0)
    x, w, b = torch.randn(64, 3, 32, 32), torch.randn(64, 3, 3, 3), torch.randn(64)
    reference = F.conv2d(x, w, b, padding=1)
    for name in ("conv2d_naive", "conv2d_im2col"):
        assert torch.allclose(solutions[name](x, w, b, 1, 1), reference, atol=1e-3), name
    seconds = {
        "F.conv2d": timed(lambda: F.conv2d(x, w, b, padding=1), 20),
        "im2col": timed(lambda: solutions["conv2d_im2col"](x, w, b, 1, 1), 20),
        "naive": timed(lambda: solutions["conv2d_naive"](x, w, b, 1, 1), 2),
    }
    base = seconds["F.conv2d"]
    print(
        json.dumps(
            {
                "benchmark": "conv2d_speed",
                "shape": "N=64, 3->64 channels, 32x32, 3x3, padding 1",
                "threads": torch.get_num_threads(),
                "ms": {k: round(v * 1e3, 2) for k, v in seconds.items()},
                "ratio_to_F.conv2d": {k: round(v / base, 2) for k, v in seconds.items()},
                "goal": "im2col <= 5x F.conv2d",
            }
        )
    )


if __name__ == "__main__":
    main()
