"""Plots for the notebooks. Every function returns its matplotlib figure."""

from __future__ import annotations

import numpy as np


def _plt():
    import matplotlib.pyplot as plt

    return plt


def _numpy(a) -> np.ndarray:
    """``a`` as a float NumPy array; a torch tensor is detached and brought to the CPU first (in
    float32: NumPy has no bfloat16)."""
    if hasattr(a, "detach"):
        return a.detach().cpu().float().numpy()
    return np.asarray(a, dtype=float)


def _image(a) -> np.ndarray:
    """One image for ``imshow``: (H, W) or (H, W, 3). A torch tensor in torch's (C, H, W) layout
    with 1 or 3 channels is turned into that; NumPy arrays are taken as they are."""
    image = _numpy(a)
    if hasattr(a, "detach") and image.ndim == 3 and image.shape[0] in (1, 3):
        image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    return image


def signal_kernel_output(x, w, s, *, labels=("signal x", "kernel w", "output s")):
    """Three stem plots side by side: a signal ``x`` (n,), a kernel ``w`` (k,), an output ``s``."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8), gridspec_kw={"width_ratios": [4, 1.2, 4]})
    for ax, values, label in zip(axes, (x, w, s), labels, strict=True):
        values = _numpy(values)
        ax.stem(np.arange(len(values)), values, basefmt=" ")
        ax.set_title(label)
        ax.set_xlabel("index")
    fig.tight_layout()
    return fig


def matrix(M, *, title: str = "", annotate: bool | None = None, ax=None):
    """Show a 2D array as an image with a diverging colour map; small ones get their values written in."""
    plt = _plt()
    M = _numpy(M)
    if M.ndim != 2:
        raise ValueError(
            f"viz.matrix shows a 2-D array (rows, columns); got shape {tuple(M.shape)}"
            + (": pick one matrix, e.g. M[0]" if M.ndim > 2 else "")
        )
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


def signals_by_class(x, y, *, per_class: int = 3, classes=None):
    """A grid of 1D signals: one column per class, ``per_class`` rows. ``x``: (N, L), ``y``: (N,).

    ``classes``: the labels to show, in order; by default every label in ``y``, sorted."""
    plt = _plt()
    classes = sorted(set(np.asarray(y).tolist())) if classes is None else list(classes)
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


def images(
    arrays,
    *,
    titles=None,
    cols: int | None = None,
    size: float = 2.6,
    cmap: str = "gray",
    symmetric: bool = False,
):
    """A row (or grid) of images; 2D arrays in gray, (H, W, 3) in colour (torch tensors may also
    be (1, H, W) or (3, H, W), so a batch (N, C, H, W) can be passed as it is). Returns the figure.

    ``symmetric`` centres the colour scale on zero (for weights shown with a diverging map).
    """
    plt = _plt()
    arrays = [_image(a) for a in arrays]
    shapes = [
        a.shape for a in arrays if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4)))
    ]
    if not arrays or shapes:
        raise ValueError(
            "images needs one or more arrays, each (H, W) or (H, W, 3), or tensors (C, H, W); "
            + (f"got shape {shapes[0]}" if shapes else "got none")
        )
    cols = cols or len(arrays)
    rows = -(-len(arrays) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, a) in enumerate(zip(axes.flat, arrays, strict=False)):
        bound = float(np.abs(a).max()) or 1.0
        limits = {"vmin": -bound, "vmax": bound} if symmetric and a.ndim == 2 else {}
        ax.imshow(np.clip(a, 0, 1) if a.ndim == 3 else a, cmap=cmap, **limits)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def kernels(weights, *, titles=None, cols: int = 8, size: float = 1.1):
    """Show convolution kernels ``(C_out, C_in, kh, kw)`` or ``(C_out, kh, kw)``; RGB when C_in == 3."""
    w = _numpy(weights)
    if w.ndim not in (3, 4):
        raise ValueError(f"kernels expects (C_out, C_in, kh, kw) or (C_out, kh, kw); got {w.shape}")
    if w.ndim == 4 and w.shape[1] == 3:
        w = w.transpose(0, 2, 3, 1)
        w = (w - w.min()) / (np.ptp(w) or 1.0)
        return images(list(w), titles=titles, cols=min(cols, len(w)), size=size)
    if w.ndim == 4:
        w = w[:, 0]
    return images(
        list(w), titles=titles, cols=min(cols, len(w)), size=size, cmap="RdBu_r", symmetric=True
    )


def feature_maps(maps, *, cols: int = 8, size: float = 1.3, title: str = ""):
    """Show the channels of one activation volume ``(C, H, W)`` side by side (a batch of one,
    (1, C, H, W), is shown as its volume)."""
    m = _numpy(maps)
    if m.ndim == 4 and len(m) == 1:
        m = m[0]
    if m.ndim != 3:
        raise ValueError(
            f"viz.feature_maps shows one activation volume (C, H, W); got shape {tuple(m.shape)}"
            + (": pick one image of the batch, e.g. maps[0]" if m.ndim == 4 else "")
        )
    fig = images(
        list(m),
        titles=[f"{i}" for i in range(len(m))],
        cols=min(cols, len(m)),
        size=size,
        cmap="viridis",
    )
    if title:
        fig.suptitle(title)
        fig.tight_layout()
    return fig


def learning_curves(*histories, labels=None):
    """Loss and accuracy per epoch for one or more :class:`course_utils.train.History` objects."""
    labels = labels or [f"run {i}" for i in range(len(histories))]
    if not histories or len(labels) != len(histories):
        raise ValueError(
            f"learning_curves needs one or more histories and one label each; got "
            f"{len(histories)} histories and {len(labels)} labels"
        )
    plt = _plt()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    for history, label in zip(histories, labels, strict=True):
        epochs = history["epoch"]
        for ax, key in ((loss_ax, "loss"), (acc_ax, "acc")):
            line = ax.plot(epochs, history[f"train_{key}"], label=f"{label} train")[0]
            if any(v is not None for v in history[f"val_{key}"]):
                ax.plot(
                    epochs,
                    history[f"val_{key}"],
                    "--",
                    color=line.get_color(),
                    label=f"{label} test",
                )
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    acc_ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def race_curves(races, *, titles=None):
    """Running training error (mean over each race's window of batches) against SGD steps for
    every measured run of each ``activation_speed.Race``, one panel per race, with its target."""
    races = [races] if hasattr(races, "runs") else list(races)
    titles = list(titles) if titles is not None else [f"race {i}" for i in range(len(races))]
    if not races or len(titles) != len(races):
        raise ValueError(
            f"race_curves needs one or more races and one title each; got {len(races)} races "
            f"and {len(titles)} titles"
        )
    plt = _plt()
    fig, axes = plt.subplots(1, len(races), figsize=(5.2 * len(races), 3.4), squeeze=False)
    for ax, race, title in zip(axes[0], races, titles, strict=True):
        window = race.window
        for k, (activation, runs) in enumerate(race.runs.items()):
            for i, run in enumerate(runs):
                if len(run.errors) < window:  # diverged before a window of batches: nothing to draw
                    continue
                errors = np.convolve(run.errors, np.ones(window) / window, mode="valid")
                ax.plot(
                    np.arange(window, len(run.errors) + 1),
                    errors,
                    color=f"C{k}",
                    alpha=0.8,
                    label=f"{activation} (lr {race.chosen_lr[activation]:g})" if i == 0 else None,
                )
        ax.axhline(race.target, color="gray", linestyle=":", label=f"target {race.target:.0%}")
        ax.set(xlabel="SGD step", ylabel="training error", title=title, ylim=(0, 1))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def accuracy_vs_labels(results, *, title: str = "", chance: float | None = None):
    """Mean test accuracy against labels per class, one line per method, with a band of one
    standard deviation over seeds; ``results``: a ``transfer_methods.Results``."""
    summary = results.summary(("method", "k"))
    ks = list(dict.fromkeys(k for _, k in summary))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    for method in dict.fromkeys(m for m, _ in summary):
        points = [(i, *summary[method, k][:2]) for i, k in enumerate(ks) if (method, k) in summary]
        x, mean, std = (np.asarray(v, dtype=float) for v in zip(*points, strict=True))
        line = ax.plot(x, mean, "o-", label=method)[0]
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle=":", label="chance")
    ax.set_xticks(range(len(ks)), [str(k) for k in ks])
    ax.set(xlabel="labelled images per class", ylabel="test accuracy", ylim=(0, 1.02), title=title)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def weights_scatter(rows, *, highlight=("alexnet", "resnet18")):
    """ImageNet-1K top-1 accuracy against parameters and against GFLOPS (log scales), one point
    per weight of ``pretrained.weights_table()``; the models in ``highlight`` are labelled."""
    rows = [r for r in rows if r["acc@1"] is not None]
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, key, label in (
        (axes[0], "params_m", "parameters (millions)"),
        (axes[1], "gflops", "GFLOPS per image"),
    ):
        shown = [r for r in rows if r[key]]
        ax.scatter([r[key] for r in shown], [r["acc@1"] for r in shown], s=12, alpha=0.6)
        for r in shown:
            if r["model"] in highlight:
                ax.scatter(r[key], r["acc@1"], s=40, color="C3")
                ax.annotate(
                    r["weights"].split("_Weights")[0],
                    (r[key], r["acc@1"]),
                    fontsize=8,
                    xytext=(4, -10),
                    textcoords="offset points",
                )
        ax.set(xscale="log", xlabel=label)
    axes[0].set_ylabel("ImageNet-1K top-1 accuracy (%)")
    fig.suptitle(f"{len(rows)} classification weights in torchvision, from their metadata")
    fig.tight_layout()
    return fig


def layer_probes(*curves):
    """Linear-probe accuracy block by block; ``curves``: (label, Results of
    ``Experiment.layer_probes``) pairs, drawn for every method and k they hold."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    blocks: list = []
    for label, results in curves:
        summary = results.summary(("method", "k", "block"))
        blocks = blocks or list(dict.fromkeys(b for *_, b in summary))
        for method, k in dict.fromkeys((m, k) for m, k, _ in summary):
            mean, std = zip(*(summary[method, k, b][:2] for b in blocks), strict=True)
            mean, std = np.asarray(mean), np.asarray(std)
            line = ax.plot(range(len(blocks)), mean, "o-", label=f"{label}: {method}, {k}/class")[0]
            ax.fill_between(
                range(len(blocks)), mean - std, mean + std, color=line.get_color(), alpha=0.15
            )
    ax.set_xticks(range(len(blocks)), blocks)
    ax.set(
        xlabel="block whose output the probe reads", ylabel="probe test accuracy", ylim=(0, 1.02)
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def invariance_curves(groups, *, xlabel: str, layers=None, shade=None, title: str = ""):
    """Zeiler and Fergus's four panels for ``groups`` {label: [invariance.Curves, one per seed]}:
    feature change at each of ``layers`` (default: the first and the last measured), probability
    of the true class and accuracy, each a mean over seeds with a band of ± one standard
    deviation. ``shade`` (low, high): the amounts the training data covered."""
    plt = _plt()
    first = next(iter(groups.values()))[0]
    layers = layers or [list(first.change)[0], list(first.change)[-1]]
    panels = [(f"feature change at {name}", "change", name) for name in layers]
    panels += [("P(true class)", "probability", None), ("accuracy", "accuracy", None)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 2.9))
    for ax, (heading, field, layer) in zip(axes, panels, strict=True):
        for label, runs in groups.items():
            rows = [getattr(r, field)[layer] if layer else getattr(r, field) for r in runs]
            values = np.array(rows, dtype=float)
            mean, sd = values.mean(0), values.std(0, ddof=1) if len(values) > 1 else 0 * values[0]
            amounts = np.asarray(runs[0].amounts, dtype=float)
            ax.plot(amounts, mean, marker=".", label=label)
            ax.fill_between(amounts, mean - sd, mean + sd, alpha=0.25)
        if shade is not None:
            ax.axvspan(*shade, color="0.9", zorder=0)
        ax.set_title(heading, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
