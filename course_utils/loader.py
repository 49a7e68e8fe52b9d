"""A batch iterator over tensors that live on the training device.

MNIST- and CIFAR-sized datasets fit in GPU memory, so they are moved there once; shuffling and
augmentation (random crop with zero padding, horizontal flip) are done on the device for the
whole batch at once (in fact for a chunk of batches at once), with no per-image Python work and
no CPU-to-GPU copy per step.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

#: Images gathered and augmented at once on a GPU (bytes); a chunk holds at least one batch. On
#: the CPU a chunk is one batch: there, launching an operation is cheap and cache sizes matter.
CHUNK_BYTES = 64 << 20


def _device(device) -> torch.device:
    """``device`` as a torch.device this machine has; ValueError naming the fix otherwise."""
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device={device!r} is not a device torch knows: use config.device (what setup() "
            "chose), 'cuda' for the GPU or 'cpu'"
        ) from None
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(chosen.type, True):
        raise ValueError(
            f"device={str(device)!r}, but torch finds no {chosen.type.upper()} device here; use "
            "the device setup() chose (config.device), which is the GPU when there is one"
        )
    return chosen


class DeviceLoader:
    """Iterate over ``(x, y)`` batches of tensors held on ``device``.

    ``x``: (N, C, H, W), ``y``: (N,), tensors or arrays. ``crop_padding=p`` pads each batch by
    ``p`` zeros and takes a random H x W crop per image; ``flip=True`` mirrors a random half of
    the images left-right.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool = True,
        crop_padding: int = 0,
        flip: bool = False,
        drop_last: bool = False,
        device=None,
        seed: int = 0,
    ) -> None:
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} images but y has {len(y)} labels")
        if x.ndim != 4:
            raise ValueError(f"x must be (N, C, H, W); got shape {tuple(x.shape)}")
        for name, value, least in (
            ("batch_size", batch_size, 1),
            ("crop_padding", crop_padding, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                raise ValueError(
                    f"{name} must be a whole number >= {least}; got {value!r}"
                    + (
                        f" (write {name}={int(value)})"
                        if isinstance(value, str) and value.isdigit()
                        else ""
                    )
                )
        self.device = _device(device) if device is not None else x.device
        self.x, self.y = x.to(self.device), y.to(self.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.crop_padding, self.flip = crop_padding, flip
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        """Batches in chunks: one gather and one augmentation per chunk of batches, then views.

        On a GPU, working on up to ``CHUNK_BYTES`` of images at a time keeps the number of
        operations per batch (and so the Python and kernel-launch overhead) near zero.
        """
        n, bs = len(self.y), self.batch_size
        stop = len(self) * bs if self.drop_last else n
        per_image = self.x[:1].numel() * self.x.element_size()
        chunk = bs if self.device.type == "cpu" else max(1, CHUNK_BYTES // (per_image * bs)) * bs
        order = (
            torch.randperm(n, device=self.device, generator=self.generator)
            if self.shuffle
            else None
        )
        for start in range(0, stop, chunk):
            end = min(start + chunk, stop)
            if order is not None:
                x, y = self.x[order[start:end]], self.y[order[start:end]]
            else:
                x, y = self.x[start:end], self.y[start:end]
            if self.crop_padding:
                x = self._random_crop(x)
            if self.flip:
                mirror = torch.rand(len(x), device=self.device, generator=self.generator) < 0.5
                x = torch.where(mirror.view(-1, 1, 1, 1), x.flip(-1), x)
            for first in range(0, end - start, bs):
                yield x[first : first + bs], y[first : first + bs]

    def _random_crop(self, x: torch.Tensor) -> torch.Tensor:
        """Per-image random crops of the zero-padded batch, by one indexing of the view that holds
        all of its H x W windows. (B, C, H, W) -> same."""
        p = self.crop_padding
        b, _, h, w = x.shape
        windows = F.pad(x, (p, p, p, p)).unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, H, W)
        dy = torch.randint(0, 2 * p + 1, (b,), device=self.device, generator=self.generator)
        dx = torch.randint(0, 2 * p + 1, (b,), device=self.device, generator=self.generator)
        return windows[torch.arange(b, device=self.device), :, dy, dx]
