"""Interactive demos: pure compute functions (unit-tested) plus thin ipywidgets wiring.

The builders (``kernel_explorer``, ``output_size_explorer``) only connect controls to the pure
functions and a plot; they construct without a running kernel.
"""

from __future__ import annotations

import html

import numpy as np

#: The lecture's 3x3 kernels and a few classics, as float arrays.
KERNELS = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "blur (lecture)": [[0, 1, 0], [1, 4, 1], [0, 1, 0]],
    "sharpen (lecture)": [[0, -1, 0], [-1, 8, -1], [0, -1, 0]],
    "edge (lecture)": [[0, -1, 0], [-1, 4, -1], [0, -1, 0]],
    "Sobel x": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "Sobel y": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "box blur": [[1, 1, 1], [1, 1, 1], [1, 1, 1]],
}


def parse_kernel(text: str) -> np.ndarray:
    """Parse a typed kernel: rows separated by ';', newlines or brackets (``[[1, 2], [3, 4]]``),
    numbers by spaces or commas."""
    rows = text.replace("[", " ").replace("]", "\n").replace(";", "\n").splitlines()
    try:
        values = [[float(v) for v in r.replace(",", " ").split()] for r in rows]
    except ValueError:
        raise ValueError(
            f"could not read {text!r} as numbers; type e.g. '0 1 0; 1 4 1; 0 1 0'"
        ) from None
    values = [row for row in values if row]
    if not values:
        raise ValueError("type a kernel, e.g. '0 1 0; 1 4 1; 0 1 0'")
    if len({len(r) for r in values}) != 1:
        raise ValueError(f"every row needs the same number of values; got {text!r}")
    if not np.isfinite(values).all():
        raise ValueError(f"a kernel needs finite numbers (no nan or inf); got {text!r}")
    return np.array(values)


def filter_image(image: np.ndarray, kernel, *, normalize: bool = True) -> np.ndarray:
    """Cross-correlate a gray image (H, W) with ``kernel`` (kh, kw), zero padding, same size.

    With ``normalize`` a kernel whose weights sum to s != 0 is divided by s (blur keeps brightness).
    """
    import torch
    import torch.nn.functional as F

    k = np.asarray(kernel, dtype=np.float32)
    if np.ndim(image) != 2 or k.ndim != 2:
        raise ValueError(
            f"filter_image takes a gray image (H, W) and a kernel (kh, kw); got shapes "
            f"{np.shape(image)} and {k.shape} (a colour photo: data.sample_image(gray=True))"
        )
    if normalize and abs(k.sum()) > 1e-8:
        k = k / k.sum()
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    w = torch.from_numpy(k)[None, None]
    pad = (
        k.shape[1] // 2,
        k.shape[1] - 1 - k.shape[1] // 2,
        k.shape[0] // 2,
        k.shape[0] - 1 - k.shape[0] // 2,
    )
    return F.conv2d(F.pad(x, pad), w)[0, 0].numpy()


#: Shown above every explorer, as plain HTML that needs no kernel: in a saved notebook the widget
#: shows its last picture (JupyterLab with the course's settings) or "Error displaying widget".
NO_KERNEL_NOTE = (
    "<p><b>Explorer.</b> Change the controls below and the picture follows. They need a running "
    "Python kernel: in a saved, downloaded or reopened copy they show the last picture and do "
    "nothing, or show an error, until you run this cell again.</p>"
)


def _explorer(children):
    """A ``VBox`` of ``children`` that, displayed in a notebook, first shows
    :data:`NO_KERNEL_NOTE` as an output of its own (ipywidgets 7 and 8 alike)."""
    import ipywidgets as W

    class Explorer(W.VBox):
        def _ipython_display_(self, **kwargs):
            from IPython.display import HTML, display

            display(HTML(NO_KERNEL_NOTE))
            shown = getattr(super(), "_ipython_display_", None)  # ipywidgets 7 displays itself
            if shown is not None:
                shown(**kwargs)
            else:
                display(self._repr_mimebundle_(**kwargs), raw=True)

    return Explorer(children)


def kernel_explorer(images: dict[str, np.ndarray]):
    """Pick an image and a kernel (or type one) and see input and output side by side."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    image_menu = W.Dropdown(options=list(images), description="image")
    kernel_menu = W.Dropdown(options=[*KERNELS, "typed"], description="kernel")
    typed = W.Text(value="1 0 -1; 2 0 -2; 1 0 -1", description="typed")
    picture, message = W.Image(format="png"), W.HTML()

    def draw(*_):
        try:
            kernel = (
                parse_kernel(typed.value)
                if kernel_menu.value == "typed"
                else np.array(KERNELS[kernel_menu.value])
            )
        except ValueError as exc:
            message.value = f"<b>{html.escape(str(exc))}</b>"
            return
        message.value = ""
        image = images[image_menu.value]
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        axes[0].imshow(image, cmap="gray")
        axes[0].set_title("input")
        axes[1].imshow(filter_image(image, kernel), cmap="gray")
        axes[1].set_title(f"output: {kernel_menu.value}")
        for ax in axes:
            ax.axis("off")
        picture.value = png(fig)

    for control in (image_menu, kernel_menu, typed):
        control.observe(draw, names="value")
    draw()
    return _explorer([W.HBox([image_menu, kernel_menu, typed]), message, picture])


def png(fig) -> bytes:
    """``fig`` as PNG bytes, closed. The explorers show pictures in an Image widget, not in an
    Output widget: nbclient (nbconvert --execute) can hang on output captured by one (its
    issue 312), and a figure is one message instead of a stream of outputs."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def output_size(
    n: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Output length of a convolution, *measured* by running ``torch.nn.functional.conv1d``."""
    import torch
    import torch.nn.functional as F

    if min(n, kernel_size, stride, dilation) < 1 or padding < 0:
        raise ValueError(
            "output_size needs n, kernel_size, stride and dilation >= 1 and padding >= 0; got "
            f"n={n}, kernel_size={kernel_size}, stride={stride}, padding={padding}, "
            f"dilation={dilation}"
        )
    x, w = torch.zeros(1, 1, n), torch.zeros(1, 1, kernel_size)
    try:
        return F.conv1d(x, w, stride=stride, padding=padding, dilation=dilation).shape[-1]
    except RuntimeError:  # the (dilated) kernel is larger than the padded input
        return 0


def window_starts(
    n: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> list[list[int]]:
    """For each output position, the input indices (in the unpadded signal, may be <0 or >=n) it reads."""
    return [
        [o * stride - padding + t * dilation for t in range(kernel_size)]
        for o in range(output_size(n, kernel_size, stride, padding, dilation))
    ]


def uncovered(
    n: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> list[int]:
    """Input indices no output ever reads (the stride skipped them or they fall off the end)."""
    read = {
        i for window in window_starts(n, kernel_size, stride, padding, dilation) for i in window
    }
    return [i for i in range(n) if i not in read]


def output_size_explorer():
    """Sliders for input size, kernel, stride, padding and dilation; draws which inputs each output reads."""
    import ipywidgets as W
    import matplotlib.pyplot as plt

    sliders = {
        "n": W.IntSlider(7, 1, 16, description="input"),
        "kernel_size": W.IntSlider(3, 1, 7, description="kernel"),
        "stride": W.IntSlider(2, 1, 4, description="stride"),
        "padding": W.IntSlider(1, 0, 3, description="padding"),
        "dilation": W.IntSlider(1, 1, 3, description="dilation"),
    }
    picture = W.Image(format="png")

    def draw(*_):
        p = {k: s.value for k, s in sliders.items()}
        windows = window_starts(**p)
        missed = uncovered(**p)
        n, pad = p["n"], p["padding"]
        fig, ax = plt.subplots(figsize=(8, 0.5 * len(windows) + 1.4))
        for x in range(-pad, n + pad):
            colour = "#dddddd" if x < 0 or x >= n else ("#f4a6a6" if x in missed else "#a6c8f4")
            ax.add_patch(plt.Rectangle((x, -1), 0.9, 0.9, color=colour))
        for row, window in enumerate(windows):
            for x in window:
                ax.add_patch(plt.Rectangle((x, row), 0.9, 0.9, color="#4a7bd0"))
        ax.set_xlim(-pad - 0.5, n + pad + 0.5)
        positions = range(-pad, n + pad)  # each tick under the middle of its box
        ax.set_xticks([x + 0.45 for x in positions], [str(x) for x in positions])
        ax.set_ylim(len(windows) + 0.2, -1.3)
        ax.set_yticks(
            [-0.55] + [r + 0.45 for r in range(len(windows))],
            ["input"] + [f"out {r}" for r in range(len(windows))],
        )
        ax.set_title(
            f"output size {len(windows)}; padding grey, never read red: {missed or 'none'}"
        )
        ax.grid(False)
        picture.value = png(fig)

    for s in sliders.values():
        s.observe(draw, names="value")
    draw()
    return _explorer(
        [W.HBox(list(sliders.values())[:3]), W.HBox(list(sliders.values())[3:]), picture]
    )
