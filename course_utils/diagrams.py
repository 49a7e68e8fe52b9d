"""Diagrams drawn from the things they show: a network's layers from the model itself
(:func:`architecture`), and one neuron's chunk of an input volume with the depth column that a
layer's filters make of it (:func:`depth_column`). Each function returns its matplotlib figure."""

from __future__ import annotations

import numpy as np


def architecture(model, input_shape, *, title: str = ""):
    """A network drawn from the model itself: one box per convolution, pooling and dense layer,
    in the order they run on a zero input of ``input_shape`` (1, C, H, W), each labelled with
    what it does and the shape of its output; box heights grow with the maps' side."""
    import torch
    import torch.nn as nn

    kinds = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.Linear)
    rows: list[tuple[str, tuple[int, ...]]] = []

    def label(m) -> str:
        if isinstance(m, nn.Conv2d):
            k, s = m.kernel_size[0], m.stride[0]
            return (
                f"conv {m.out_channels}@{k}×{k}"
                + (f"/{s}" if s > 1 else "")
                + (f"\n{m.groups} groups" if m.groups > 1 else "")
            )
        if isinstance(m, nn.Linear):
            return f"dense {m.out_features}"
        k, s = m.kernel_size, m.stride
        k, s = (k if isinstance(k, int) else k[0]), (s if isinstance(s, int) else s[0])
        return f"{'max' if isinstance(m, nn.MaxPool2d) else 'avg'} pool {k}×{k}/{s}"

    hooks = [
        m.register_forward_hook(lambda m, _i, out: rows.append((label(m), tuple(out.shape[1:]))))
        for m in model.modules()
        if isinstance(m, kinds)
    ]
    training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(input_shape))
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    rows.insert(0, ("input", tuple(input_shape[1:])))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.25 * len(rows), 3.2))
    top = max(shape[-1] if len(shape) == 3 else 1 for _, shape in rows)
    for i, (name, shape) in enumerate(rows):
        height = 0.3 + 2.2 * (np.sqrt(shape[-1] / top) if len(shape) == 3 else 0.05)
        ax.add_patch(
            plt.Rectangle((i, -height / 2), 0.8, height, color=f"C{min(len(shape), 3)}", alpha=0.35)
        )
        ax.text(i + 0.4, height / 2 + 0.08, name, ha="center", va="bottom", fontsize=7)
        ax.text(
            i + 0.4,
            -height / 2 - 0.08,
            "×".join(map(str, shape)),
            ha="center",
            va="top",
            fontsize=7,
        )
    ax.set(xlim=(-0.2, len(rows)), ylim=(-1.9, 1.9), title=title)
    ax.axis("off")
    fig.tight_layout()
    return fig


#: How far one unit of depth moves a box's back face, right and up, in an oblique drawing.
OBLIQUE = (0.55, 0.4)


def _box(ax, x, y, width, height, depth, colour, alpha=0.25, zorder=1):
    """An oblique box: front face width x height with its lower-left corner at (x, y), and
    ``depth`` going into the page (up and to the right)."""
    from matplotlib.patches import Polygon

    dx, dy = OBLIQUE[0] * depth, OBLIQUE[1] * depth
    faces = [
        [(x, y), (x + width, y), (x + width, y + height), (x, y + height)],  # front
        [
            (x, y + height),
            (x + width, y + height),
            (x + width + dx, y + height + dy),
            (x + dx, y + height + dy),
        ],  # top
        [
            (x + width, y),
            (x + width + dx, y + dy),
            (x + width + dx, y + height + dy),
            (x + width, y + height),
        ],  # side
    ]
    for face in faces:
        ax.add_patch(
            Polygon(
                face,
                closed=True,
                facecolor=colour,
                edgecolor="black",
                alpha=alpha,
                linewidth=0.8,
                zorder=zorder,
            )
        )


def depth_column(
    input_shape=(3, 32, 32), *, kernel: int = 5, filters: int = 6, at=(10, 7), depth_scale=3.0
):
    """The lecture's picture of a convolution layer on a volume: the input (C, H, W) with one
    neuron's C x kernel x kernel chunk at output position ``at`` (row, column), and the output
    volume (filters, H - kernel + 1, W - kernel + 1) with the depth column of ``filters``
    numbers that the filters compute from that chunk. Depth is drawn ``depth_scale`` times wider
    per channel so that a few channels show."""
    import math

    import matplotlib.pyplot as plt

    def whole(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not (isinstance(input_shape, (tuple, list)) and len(input_shape) == 3):
        raise ValueError(f"input_shape must be (C, H, W), three sizes; got {input_shape!r}")
    c, h, w = input_shape
    if not all(whole(v) and v > 0 for v in (c, h, w, kernel, filters)):
        raise ValueError(
            "channels, height, width, kernel and filters must be whole numbers of at least 1; got "
            f"input_shape={tuple(input_shape)}, kernel={kernel!r}, filters={filters!r}"
        )
    if kernel > min(h, w):
        raise ValueError(f"a {kernel} x {kernel} kernel does not fit in a {h} x {w} input")
    if not (
        isinstance(depth_scale, (int, float)) and math.isfinite(depth_scale) and depth_scale > 0
    ):
        raise ValueError(f"depth_scale must be a positive number; got {depth_scale!r}")
    out_h, out_w = h - kernel + 1, w - kernel + 1
    if not (isinstance(at, (tuple, list)) and len(at) == 2 and all(whole(v) for v in at)):
        raise ValueError(f"at must be an output position (row, column); got {at!r}")
    row, col = at
    if not (0 <= row < out_h and 0 <= col < out_w):
        raise ValueError(f"at={at} is outside the {out_h} x {out_w} output of a {kernel}-kernel")
    gap = 14
    fig, ax = plt.subplots(figsize=(9, 4.2))
    _box(ax, 0, 0, w, h, c * depth_scale, "C0", alpha=0.12)
    chunk_y = h - row - kernel
    _box(ax, col, chunk_y, kernel, kernel, c * depth_scale, "C0", alpha=0.55, zorder=2)
    left = w + c * depth_scale * OBLIQUE[0] + gap
    _box(ax, left, 0, out_w, out_h, filters * depth_scale, "C2", alpha=0.1)
    cell_y = out_h - row - 1
    for f in range(filters):  # one cell per filter, front to back
        dx, dy = OBLIQUE[0] * f * depth_scale, OBLIQUE[1] * f * depth_scale
        _box(
            ax,
            left + col + dx,
            cell_y + dy,
            1,
            1,
            depth_scale,
            f"C{f % 10}",
            alpha=0.8,
            zorder=3 + filters - f,
        )
    for corner in ((col + kernel, chunk_y + kernel), (col + kernel, chunk_y)):
        ax.annotate(
            "",
            xy=(left + col, cell_y + 0.5),
            xytext=corner,
            arrowprops=dict(arrowstyle="->", color="gray", linewidth=0.8),
        )
    ax.text(w / 2, -2.5, f"input {c}×{h}×{w}", ha="center", va="top")
    ax.text(
        col + kernel / 2,
        chunk_y - 0.6,
        f"chunk {c}×{kernel}×{kernel}",
        ha="center",
        va="top",
        fontsize=8,
        color="C0",
    )
    ax.text(left + out_w / 2, -2.5, f"output {filters}×{out_h}×{out_w}", ha="center", va="top")
    ax.text(
        left + col + 0.5,
        cell_y + 1.6 + OBLIQUE[1] * filters * depth_scale,
        f"depth column: {filters} numbers,\none per filter",
        ha="center",
        va="bottom",
        fontsize=8,
    )
    right = left + out_w + OBLIQUE[0] * filters * depth_scale
    top = max(h + OBLIQUE[1] * c * depth_scale, out_h + OBLIQUE[1] * filters * depth_scale)
    ax.set(xlim=(-1, right + 1), ylim=(-5, top + 4), aspect="equal")
    ax.axis("off")
    fig.tight_layout()
    return fig
