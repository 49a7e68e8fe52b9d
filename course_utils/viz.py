"""Plots for the notebooks. Every function returns its matplotlib figure."""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib.pyplot as plt

    return plt


def signal_kernel_output(x, w, s, *, labels=("signal x", "kernel w", "output s")):
    """Three stem plots side by side: a signal ``x`` (n,), a kernel ``w`` (k,), an output ``s``."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8), gridspec_kw={"width_ratios": [4, 1.2, 4]})
    for ax, values, label in zip(axes, (x, w, s), labels, strict=True):
        values = np.asarray(values, dtype=float)
        ax.stem(np.arange(len(values)), values, basefmt=" ")
        ax.set_title(label)
        ax.set_xlabel("index")
    fig.tight_layout()
    return fig


def matrix(M, *, title: str = "", annotate: bool | None = None, ax=None):
    """Show a 2D array as an image with a diverging colour map; small ones get their values written in."""
    plt = _plt()
    M = np.asarray(M, dtype=float)
    if ax is None:
        fig, ax = plt.subplots(
            figsize=(min(0.45 * M.shape[1] + 1.5, 10), min(0.45 * M.shape[0] + 1, 8))
        )
    else:
        fig = ax.figure
    bound = float(np.abs(M).max()) or 1.0
    ax.imshow(M, cmap="RdBu_r", vmin=-bound, vmax=bound)
    ax.grid(False)
    ax.set_title(title)
    ax.set_xlabel("input index j")
    ax.set_ylabel("output index i")
    if annotate if annotate is not None else M.size <= 200:
        for (i, j), value in np.ndenumerate(M):
            if value != 0:
                ax.text(j, i, f"{value:g}", ha="center", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def signals_by_class(x, y, *, per_class: int = 3, classes=range(10)):
    """A grid of 1D signals: one column per class, ``per_class`` rows. ``x``: (N, L), ``y``: (N,)."""
    plt = _plt()
    classes = list(classes)
    fig, axes = plt.subplots(
        per_class,
        len(classes),
        figsize=(1.2 * len(classes) + 1, 1.0 * per_class + 0.6),
        sharex=True,
        sharey=True,
    )
    axes = np.atleast_2d(axes)
    for col, label in enumerate(classes):
        rows = np.flatnonzero(np.asarray(y) == label)[:per_class]
        for row, index in enumerate(rows):
            ax = axes[row, col]
            ax.plot(x[index], lw=1.2)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, col].set_title(str(label))
    fig.tight_layout()
    return fig
