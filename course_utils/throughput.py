"""Training throughput and how much of a device it uses: FLOPs per training image (counted by
``torch.utils.flop_counter``, grouped weight gradients counted once), images per second of
``train.fit`` on batches already on the device, and the model FLOP utilisation (MFU): achieved
FLOP/s over the device's dense peak. Used by notebook 11 and ``benchmarks/alexnet_throughput.py``.
"""

from __future__ import annotations

import contextlib
import io
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from . import models, train

#: Dense bf16 (fp16 where bf16 is missing) tensor-core peaks in TFLOP/s, from the vendor data sheets.
PEAK_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200 NVL", 835.0),
    ("H100", 989.4),
    ("H200", 989.4),
    ("GH200", 989.4),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("T4", 65.0),
    ("V100", 125.0),
]


def peak_tflops(device: torch.device | str) -> float | None:
    """The dense 16-bit tensor-core peak of a CUDA ``device`` in TFLOP/s, from the table; None
    for other devices and for GPUs the table does not name."""
    device = torch.device(device)
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


def _sync(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work (CUDA and Apple's MPS run ahead)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def median_ms(fn, device: torch.device | str = "cpu", repeats: int = 5) -> float:
    """Median milliseconds of ``fn()`` over ``repeats`` calls after one warm-up call, waiting
    for the GPU before and after each call."""
    device = torch.device(device)
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a whole number of at least 1; got {repeats!r}")
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return 1e3 * sorted(times)[len(times) // 2]


def pass_ms(layer, x: torch.Tensor, repeats: int = 5) -> float:
    """Median milliseconds of one forward and backward pass of ``layer`` on ``x``, for a layer
    whose output has the shape of its input (a normalisation, an activation)."""

    def step():
        leaf = x.detach().requires_grad_()
        layer(leaf).backward(torch.ones_like(leaf))

    return median_ms(step, x.device, repeats)
