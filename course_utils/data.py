"""Datasets for the notebooks.

Notebook 01 needs 1D signals. :func:`mnist1d` generates them offline and deterministically in
the spirit of MNIST-1D (Greydanus, 2020): each class is a short template that is scaled,
padded at a random position, sheared and corrupted with smooth and white noise, so a
classifier has to find a shifted, stretched pattern, the job convolution is made for.
The templates below are our own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: One 12-point template per class (0-9); a hand-drawn pen stroke per digit.
MNIST1D_TEMPLATES = np.array(
    [
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],  # 0: a round hump
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],  # 1: dip then a straight ramp
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],  # 2: hump then trough
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],  # 3: two humps
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],  # 4: ramp down, jump up
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],  # 5: flat trough then hump
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],  # 6: round trough
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],  # 7: jump up, ramp down
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],  # 8: two troughs
        [5, 4, 3.5, 3.5, 4, 5, 5.5, 6.5, 7, 7, 6, 5],  # 9: trough then hump
    ]
)


#: Range of a stretched template's length, as a fraction of the signal length.
TEMPLATE_SCALE = (0.4, 0.6)


@dataclass(frozen=True)
class Signals:
    """Labelled 1D signals. ``x``: (N, length) float32, ``y``: (N,) int64 class labels."""

    x: np.ndarray
    y: np.ndarray
    source: str


def resample(values: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of ``values`` onto ``length`` evenly spaced points."""
    return np.interp(np.linspace(0, len(values) - 1, length), np.arange(len(values)), values)


def _smooth_noise(rng: np.random.Generator, length: int, width: float) -> np.ndarray:
    """White noise convolved with a Gaussian of standard deviation ``width`` samples."""
    half = int(3 * width)
    taps = np.exp(-0.5 * (np.arange(-half, half + 1) / width) ** 2)
    noise = rng.normal(size=length + 2 * half)
    return np.convolve(noise, taps / np.sqrt((taps**2).sum()), mode="valid")


def mnist1d(n: int = 4000, *, length: int = 40, seed: int = 0, noise: float = 0.25) -> Signals:
    """Generate ``n`` MNIST-1D-style signals of ``length`` samples (balanced classes).

    Each template (12 points) is stretched to 40-60% of ``length`` (:data:`TEMPLATE_SCALE`),
    placed at a random offset, sheared by a random linear ramp and corrupted by smooth
    noise (a Gaussian of width 2 samples) and white noise of standard deviation ``noise``.
    Returns :class:`Signals` with ``x``: (n, length) float32 and ``y``: (n,) int64.
    """
    if n < 1 or length < 16:
        raise ValueError(f"need n >= 1 and length >= 16 samples; got n={n}, length={length}")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    rng.shuffle(y)
    x = np.empty((n, length))
    t = np.linspace(-1, 1, length)
    for i, label in enumerate(y):
        stroke = MNIST1D_TEMPLATES[label] - 5.0
        size = int(rng.uniform(*TEMPLATE_SCALE) * length)
        start = rng.integers(0, length - size + 1)
        signal = np.zeros(length)
        signal[start : start + size] = resample(stroke, size)
        signal += rng.uniform(-0.75, 0.75) * t
        signal += 0.4 * _smooth_noise(rng, length, 2.0) + noise * rng.normal(size=length)
        x[i] = signal
    return Signals(
        x.astype(np.float32), y.astype(np.int64), f"MNIST-1D-style signals (generated, seed {seed})"
    )


#: Real photographs that ship inside our dependencies (no download).
SAMPLE_IMAGES = {
    "china": "scikit-learn: load_sample_image('china.jpg'), a temple in China (427x640)",
    "flower": "scikit-learn: load_sample_image('flower.jpg'), a flower (427x640)",
    "grace_hopper": "matplotlib: sample_data/grace_hopper.jpg, a portrait (600x512)",
}


def sample_image(name: str = "china", *, gray: bool = True, size: int | None = None) -> np.ndarray:
    """A real photo from :data:`SAMPLE_IMAGES` as float32 in [0, 1].

    Returns (H, W) when ``gray`` else (H, W, 3); ``size`` resizes the shorter side (area averaging).
    """
    if name not in SAMPLE_IMAGES:
        raise ValueError(f"unknown image {name!r}; choose one of {sorted(SAMPLE_IMAGES)}")
    if size is not None and size < 1:
        raise ValueError(f"size is the shorter side in pixels, at least 1; got {size}")
    if name == "grace_hopper":
        import matplotlib.cbook as cbook

        with cbook.get_sample_data("grace_hopper.jpg") as handle:
            import matplotlib.pyplot as plt

            image = plt.imread(handle, format="jpg")
    else:
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    image = image.astype(np.float32) / 255.0
    if gray:
        image = image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    if size is not None:
        import torch
        import torch.nn.functional as F

        t = torch.from_numpy(np.ascontiguousarray(image))
        t = t.unsqueeze(0) if gray else t.permute(2, 0, 1)
        scale = size / min(t.shape[-2:])
        out_hw = (round(t.shape[-2] * scale), round(t.shape[-1] * scale))
        t = F.interpolate(t.unsqueeze(0), size=out_hw, mode="area")[0]
        image = (t[0] if gray else t.permute(1, 2, 0)).numpy()
    return image
