"""Sliding-window animations of convolution (cross-correlation, as libraries compute it): the
window over the input, the kernel it is multiplied with, and the output filling in one value per
frame. Each function returns ``IPython.display.HTML`` (matplotlib's JavaScript player, frames
embedded as PNG), which a notebook shows and a saved notebook keeps without a kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from IPython.display import HTML

#: Frames per second of the player, and the most frames an animation may have (each is a PNG
#: embedded in the notebook), and their resolution.
FPS = 2
MAX_FRAMES = 64
DPI = 72


#: The largest signal (values) and image side (pixels) drawn: each cell is a square with its
#: number, redrawn in every frame.
MAX_SIGNAL, MAX_SIDE = 24, 10


def _values(a, name: str, ndim: int) -> np.ndarray:
    """``a`` (an array, a tensor or nested lists of real numbers) as a float array of ``ndim``
    dimensions; ValueError saying what is wrong otherwise."""
    try:
        values = a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
    except (TypeError, ValueError, RuntimeError):
        values = np.asarray(None)
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got {type(a).__name__}")
    values = values.astype(float)
    if values.ndim != ndim or 0 in values.shape:
        raise ValueError(
            f"{name} must be a non-empty {ndim}-D array; got shape {tuple(values.shape)}"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"{name} holds NaN or infinity: every cell needs a number to show")
    return values


def _num(value: float) -> str:
    """A factor of a printed product: negative numbers in parentheses."""
    return f"({value:g})" if value < 0 else f"{value:g}"


def _cells(ax, values: np.ndarray, *, top: float, left: float = 0.0, highlight=None, colour="C0"):
    """Draw ``values`` (rows, cols) as a grid of numbered squares whose top-left corner is at
    (left, top); squares in the boolean mask ``highlight`` are filled."""
    from matplotlib.patches import Rectangle

    rows, cols = values.shape
    for r in range(rows):
        for c in range(cols):
            lit = highlight is not None and highlight[r, c]
            ax.add_patch(
                Rectangle(
                    (left + c, top - r - 1),
                    1,
                    1,
                    facecolor=colour if lit else "white",
                    alpha=0.35 if lit else 1.0,
                    edgecolor="black",
                    linewidth=0.8,
                )
            )
            if not np.isnan(values[r, c]):
                ax.text(
                    left + c + 0.5,
                    top - r - 0.5,
                    f"{values[r, c]:g}",
                    ha="center",
                    va="center",
                    fontsize=9,
                )


def _player(fig, frames: int, draw) -> HTML:
    import matplotlib.pyplot as plt
    from IPython.display import HTML
    from matplotlib import animation

    if frames > MAX_FRAMES:
        plt.close(fig)
        raise ValueError(
            f"this animation would have {frames} frames (at most {MAX_FRAMES}): use a shorter "
            "input or a larger kernel"
        )
    movie = animation.FuncAnimation(fig, draw, frames=frames, interval=1000 / FPS)
    html = HTML(movie.to_jshtml(fps=FPS, default_mode="once"))
    plt.close(fig)  # the player holds the frames; no static copy below it
    return html


def slide_1d(x, w):
    """Animate the cross-correlation of a signal ``x`` (n,) with a kernel ``w`` (k,), k <= n:
    frame t lights up the window x[t : t + k], shows w under it, and fills output t."""
    import matplotlib.pyplot as plt

    x, w = _values(x, "x", 1), _values(w, "w", 1)
    n, k = x.size, w.size
    if k > n:
        raise ValueError(f"the kernel ({k} values) is longer than the signal ({n}): pad the signal")
    if n > MAX_SIGNAL:
        raise ValueError(f"a signal of {n} values is too long to draw (at most {MAX_SIGNAL})")
    out = np.correlate(x, w, mode="valid")
    fig, ax = plt.subplots(figsize=(0.55 * n + 1.5, 2.6), dpi=DPI)

    def draw(t: int):
        ax.clear()
        ax.set_xlim(-1.6, n + 0.2)
        ax.set_ylim(-3.3, 1.3)
        ax.axis("off")
        window = np.zeros((1, n), bool)
        window[0, t : t + k] = True
        _cells(ax, x[None], top=1, highlight=window)
        _cells(ax, w[None], top=-0.5, left=t, highlight=np.ones((1, k), bool), colour="C1")
        shown = np.where(np.arange(len(out)) <= t, out, np.nan)[None]
        _cells(
            ax,
            shown,
            top=-2,
            left=(k - 1) / 2,
            highlight=np.arange(len(out))[None] == t,
            colour="C2",
        )
        for y, name in ((0.5, "x"), (-1, "w"), (-2.5, "out")):
            ax.text(-0.3, y, name, ha="right", va="center", fontsize=10, style="italic")
        terms = " + ".join(f"{_num(a)}·{_num(b)}" for a, b in zip(x[t : t + k], w, strict=True))
        ax.set_title(f"out[{t}] = {terms} = {out[t]:g}", fontsize=10)

    return _player(fig, len(out), draw)


def slide_2d(image, kernel):
    """Animate the cross-correlation of an ``image`` (H, W) with a ``kernel`` (kh, kw): frame
    number i * W_out + j lights up the window at (i, j) and fills output (i, j)."""
    import matplotlib.pyplot as plt

    image, kernel = _values(image, "image", 2), _values(kernel, "kernel", 2)
    (h, width), (kh, kw) = image.shape, kernel.shape
    if kh > h or kw > width:
        raise ValueError(f"the kernel {kernel.shape} is larger than the image {image.shape}")
    if max(h, width) > MAX_SIDE:
        raise ValueError(
            f"an image of {h} x {width} is too large to draw (at most {MAX_SIDE} a side)"
        )
    out = np.array(
        [
            [(image[i : i + kh, j : j + kw] * kernel).sum() for j in range(width - kw + 1)]
            for i in range(h - kh + 1)
        ]
    )
    rows, cols = out.shape
    fig, ax = plt.subplots(figsize=(0.5 * (width + kw + cols) + 2, 0.5 * h + 1), dpi=DPI)

    def draw(frame: int):
        i, j = divmod(frame, cols)
        ax.clear()
        ax.set_xlim(-0.2, width + kw + cols + 2.2)
        ax.set_ylim(-0.4, h + 0.9)
        ax.set_aspect("equal")
        ax.axis("off")
        window = np.zeros(image.shape, bool)
        window[i : i + kh, j : j + kw] = True
        _cells(ax, image, top=h, highlight=window)
        _cells(
            ax, kernel, top=h, left=width + 1, highlight=np.ones(kernel.shape, bool), colour="C1"
        )
        done = np.arange(out.size).reshape(out.shape) <= frame
        lit = np.zeros(out.shape, bool)
        lit[i, j] = True
        _cells(
            ax, np.where(done, out, np.nan), top=h, left=width + kw + 2, highlight=lit, colour="C2"
        )
        for x, name in (
            (width / 2, "image"),
            (width + 1 + kw / 2, "kernel"),
            (width + kw + 2 + cols / 2, "output"),
        ):
            ax.text(x, h + 0.3, name, ha="center", fontsize=10, style="italic")
        ax.set_title(f"output[{i}, {j}] = sum(window * kernel) = {out[i, j]:g}", fontsize=10)

    return _player(fig, out.size, draw)
