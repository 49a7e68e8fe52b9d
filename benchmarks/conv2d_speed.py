"""Notebook 02's naive and im2col convolutions against F.conv2d, on a batch of 64 images,
3 -> 64 channels, 32x32, 3x3 kernels, padding 1. F.conv2d is timed on the batch in both memory
layouts, NCHW and channels_last; prints one JSON line with every time's ratio to the faster one.

The implementations are the instructor solutions of notebooks/02_convolution_2d.ipynb.
"""

import ctypes
import json
import sys
import time

import torch
import torch.nn.functional as F

from course_utils.instructor import notebooks


def pin_allocator() -> bool:
    """Stop glibc from handing large blocks (this layer's 16 MB outputs) back to the system.

    By default glibc moves its threshold for serving a block from fresh pages as the process
    runs, so in some processes every call pays the page faults of a new 16 MB block and in
    others none: 4-5x as long for the same call. Fixing the thresholds times the convolutions, not
    the allocator. Returns False where that is not possible (not Linux, or a C library without
    these settings, such as musl).
    """
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(mallopt(m_mmap_threshold, 1 << 30) and mallopt(m_trim_threshold, 1 << 31))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    allocator_pinned = pin_allocator()
    path = next(p for p in notebooks.notebook_paths() if p.name.startswith("02_"))
    solutions = notebooks.solution_namespace(path)
    torch.manual_seed(0)
    x, w, b = torch.randn(64, 3, 32, 32), torch.randn(64, 3, 3, 3), torch.randn(64)
    x_channels_last = x.contiguous(memory_format=torch.channels_last)
    reference = F.conv2d(x, w, b, padding=1)
    assert torch.allclose(F.conv2d(x_channels_last, w, b, padding=1), reference, atol=1e-4)
    for name in ("conv2d_naive", "conv2d_im2col"):
        assert torch.allclose(solutions[name](x, w, b, 1, 1), reference, atol=1e-3), name
    seconds = {
        "F.conv2d_nchw": timed(lambda: F.conv2d(x, w, b, padding=1), 20),
        "F.conv2d_channels_last": timed(lambda: F.conv2d(x_channels_last, w, b, padding=1), 20),
        "im2col": timed(lambda: solutions["conv2d_im2col"](x, w, b, 1, 1), 20),
        "naive": timed(lambda: solutions["conv2d_naive"](x, w, b, 1, 1), 2),
    }
    base = min(seconds["F.conv2d_nchw"], seconds["F.conv2d_channels_last"])
    print(
        json.dumps(
            {
                "benchmark": "conv2d_speed",
                "shape": "N=64, 3->64 channels, 32x32, 3x3, padding 1",
                "threads": torch.get_num_threads(),
                "allocator_pinned": allocator_pinned,
                "ms": {k: round(v * 1e3, 2) for k, v in seconds.items()},
                "ratio_to_faster_F.conv2d": {k: round(v / base, 2) for k, v in seconds.items()},
                "goal": "im2col <= 5x the faster F.conv2d",
            }
        )
    )


if __name__ == "__main__":
    main()
