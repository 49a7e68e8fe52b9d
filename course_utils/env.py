"""The notebook environment: seeds, device, threads, plot style and the course's flags.

Flags are read from the process environment:

- ``COURSE_OFFLINE=1`` never tries a download; datasets come from the stand-ins.
- ``COURSE_FAST=1`` tiny epochs and subsets, same code paths (set by the test suite).
- ``COURSE_THREADS=n`` CPU threads for torch (default: all cores; the grader uses 1).
- ``COURSE_CHECK_STRICT=1`` makes a failed or unattempted exercise check raise (test suite).
- ``COURSE_PRECISION=fp16`` forces the older GPUs' path (fp16 autocast with a gradient scaler, as
  on Colab's T4) on any GPU; ``fp32`` turns autocast off; ``auto`` (or unset) chooses by device.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}
#: The on/off settings read by :func:`flag`.
SWITCHES = ("COURSE_OFFLINE", "COURSE_FAST", "COURSE_CHECK_STRICT")


def flag(name: str) -> bool:
    """True when the environment variable ``name`` is 1/true/yes/on, False when it is unset or
    0/false/no/off; any other value (a typo) is a ValueError rather than a silent False."""
    value = os.environ.get(name, "").strip().lower()
    if value not in _TRUE | _FALSE:
        raise ValueError(
            f"{name}={os.environ[name]!r} is neither on nor off; set it to 1 (or true, yes, on) "
            "to turn it on, or to 0 (or false, no, off) or unset it to turn it off"
        )
    return value in _TRUE


def check_settings() -> None:
    """Raise the ValueError of the first course setting whose value is not understood: a
    misspelt switch (COURSE_FAST, COURSE_OFFLINE, COURSE_CHECK_STRICT) or COURSE_THREADS."""
    for name in SWITCHES:
        flag(name)
    threads()
    precision_choice()


def is_fast() -> bool:
    """``COURSE_FAST=1``: the test suite's tiny configuration."""
    return flag("COURSE_FAST")


def is_offline() -> bool:
    """``COURSE_OFFLINE=1``: no download is attempted."""
    return flag("COURSE_OFFLINE")


def threads() -> int:
    """``COURSE_THREADS`` as a positive count of CPU threads, else every core."""
    value = os.environ.get("COURSE_THREADS", "").strip()
    if not value:
        return os.cpu_count() or 1
    if not value.isdecimal() or int(value) < 1:
        raise ValueError(
            f"COURSE_THREADS={value!r} is not a positive whole number of CPU threads; "
            "set it to one (e.g. COURSE_THREADS=2) or unset it to use every core"
        )
    return int(value)


#: ``COURSE_PRECISION``'s values: the device's own choice, the older GPUs' path, no autocast.
PRECISIONS = ("auto", "fp16", "fp32")


def precision_choice() -> str:
    """``COURSE_PRECISION`` as one of :data:`PRECISIONS` (unset: ``auto``)."""
    value = os.environ.get("COURSE_PRECISION", "").strip().lower() or "auto"
    if value not in PRECISIONS:
        raise ValueError(
            f"COURSE_PRECISION={os.environ['COURSE_PRECISION']!r} is not one of "
            f"{', '.join(PRECISIONS)}; set it to fp16 to force the older GPUs' fp16 path, "
            "or unset it to let the device choose"
        )
    return value


def in_colab() -> bool:
    """True inside a Google Colab runtime."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def repo_root() -> Path | None:
    """The course repository this package was installed from (editable install), if any."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() and (root / "notebooks").is_dir() else None


def data_dir() -> Path:
    """Where datasets are cached: ``$COURSE_DATA_DIR``, else the repository's ``data/``, else ``./data``."""
    if "COURSE_DATA_DIR" in os.environ:
        return Path(os.environ["COURSE_DATA_DIR"]).expanduser()
    root = repo_root()
    return root / "data" if root else Path.cwd() / "data"


@dataclass(frozen=True)
class Config:
    """What :func:`setup` chose. ``device`` is a ``torch.device``."""

    seed: int
    device: object
    threads: int
    fast: bool
    offline: bool
    colab: bool

    def summary(self) -> str:
        """The one line :func:`setup` prints."""
        device = str(self.device)
        if device.startswith("cuda"):
            import torch

            device += f" ({torch.cuda.get_device_name(self.device)})"
        parts = [
            f"course_utils: device {device}",
            f"{self.threads} CPU threads",
            f"seed {self.seed}",
            "FAST mode (tiny epochs, COURSE_FAST=1)" if self.fast else "full mode",
            "offline: stand-in data (COURSE_OFFLINE=1)"
            if self.offline
            else "online: real data, stand-ins if a download fails",
        ]
        if self.colab:
            parts.append("Colab")
        return " | ".join(parts)


def choose_device():
    """CUDA if available, else Apple's MPS, else CPU, as a ``torch.device``."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def read_in_fast_layout(read, device, layout=None) -> tuple:
    """``(read(layout), layout)``: a network read (features, measurements, no training) with its
    image batches (N, C, H, W) fed in the channels-last layout on a CPU, where the layers keep it
    and max pooling runs several times faster (benchmarks/channels_last_reading.py), and in the
    default layout elsewhere, or when ``layout`` (what an earlier read of the same network
    returned) is the default one. A network that cannot run in channels-last (a ``.view`` of a
    convolution's output) is read again in the default layout; its hooks and any state its
    forward pass keeps see those batches twice. Any other error is raised as it is."""
    import torch

    default = torch.contiguous_format
    if torch.device(device).type != "cpu" or layout == default:
        return read(default), default
    try:
        return read(torch.channels_last), torch.channels_last
    except RuntimeError as error:
        if not any(word in str(error) for word in ("view size is not compatible", "contiguous")):
            raise
    return read(default), default


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_plot_style() -> None:
    """A readable, consistent matplotlib style for every notebook."""
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.figsize": (7.0, 3.2),
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "image.cmap": "gray",
            "font.size": 10,
        }
    )


def setup(*, seed: int = 0, quiet: bool = False) -> Config:
    """Prepare a notebook: seed, device, threads, plot style; print what was chosen in one line.

    Returns a :class:`Config`; ``config.device`` is where tensors and models should go.
    """
    import torch

    check_settings()  # a misspelt setting stops here, not at some later cell
    seed_everything(seed)
    torch.set_num_threads(threads())
    set_plot_style()
    torch.backends.cudnn.benchmark = True  # fixed batch shapes: let cuDNN pick its fastest kernels
    config = Config(
        seed=seed,
        device=choose_device(),
        threads=torch.get_num_threads(),
        fast=is_fast(),
        offline=is_offline(),
        colab=in_colab(),
    )
    if not quiet:
        print(config.summary())
    return config
