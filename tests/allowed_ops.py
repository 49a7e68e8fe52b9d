"""Library operations rebuilt from what the exercises allow (loops, slicing, ``Tensor.unfold``,
``einsum``), for tests that play a student: an answer that called ``np.convolve``, ``F.conv2d``,
``F.unfold`` or ``F.max_pool2d`` itself would be failed for the call the exercise rules out."""

import numpy as np
import torch
import torch.nn.functional as F


def convolve(x, w):
    """``np.convolve(x, w)`` (full) with two loops."""
    x, w = np.asarray(x, float), np.asarray(w, float)
    out = np.zeros(len(x) + len(w) - 1)
    for a, value in enumerate(x):
        out[a : a + len(w)] += value * w
    return out


def windows(x, kh: int, kw: int, stride: int = 1, padding: int = 0):
    """The (kh, kw) windows of x (N, C, H, W): (N, C, H_out, W_out, kh, kw)."""
    x = F.pad(x, (padding,) * 4)
    return x.unfold(2, kh, stride).unfold(3, kw, stride)


def conv2d(x, w, b=None, stride: int = 1, padding: int = 0):
    """``F.conv2d`` (cross-correlation) as windows and one einsum."""
    out = torch.einsum("nchwij,ocij->nohw", windows(x, *w.shape[-2:], stride, padding), w)
    return out if b is None else out + b.view(1, -1, 1, 1)


def unfold(x, kh: int, kw: int, stride: int = 1, padding: int = 0):
    """``F.unfold(x, (kh, kw), stride=stride, padding=padding)``: (N, C * kh * kw, L)."""
    n, c = x.shape[:2]
    patches = windows(x, kh, kw, stride, padding)  # (N, C, H_out, W_out, kh, kw)
    return patches.permute(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, -1)


def max_pool2d(x, kernel_size: int, stride: int, return_indices: bool = False):
    """``F.max_pool2d`` without padding; indices are flat positions h * W + w in each plane,
    the first maximum of a window winning a tie."""
    patches = windows(x, kernel_size, kernel_size, stride).flatten(-2)
    out, inside = patches.max(dim=-1)
    if not return_indices:
        return out
    rows = torch.arange(out.shape[2]).view(-1, 1) * stride + inside // kernel_size
    cols = torch.arange(out.shape[3]).view(1, -1) * stride + inside % kernel_size
    return out, rows * x.shape[-1] + cols
