"""Widgets: their pure functions, and that the builders construct without a kernel."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from course_utils import widgets


@pytest.mark.parametrize(
    ("n", "k", "s", "p", "d"), [(7, 3, 2, 1, 1), (10, 3, 3, 0, 1), (5, 5, 1, 0, 1), (9, 3, 1, 0, 3)]
)
def test_output_size_agrees_with_the_formula(n, k, s, p, d):
    assert widgets.output_size(n, k, s, p, d) == (n + 2 * p - d * (k - 1) - 1) // s + 1


def test_output_size_is_zero_when_the_kernel_does_not_fit():
    assert widgets.output_size(2, 5) == 0 and widgets.window_starts(2, 5) == []


@pytest.mark.parametrize(
    ("n", "k", "s", "p", "d"), [(5, 3, 0, 0, 1), (5, 0, 1, 0, 1), (5, 3, 1, -1, 1)]
)
def test_output_size_refuses_settings_no_convolution_has(n, k, s, p, d):
    with pytest.raises(ValueError, match=f"got n={n}, kernel_size={k}, stride={s}, padding={p}"):
        widgets.output_size(n, k, s, p, d)


def test_filters_and_photos_refuse_what_they_cannot_show():
    from course_utils import data

    with pytest.raises(
        ValueError, match=r"gray image \(H, W\) .* got shapes \(4, 4, 3\) and \(3, 3\)"
    ):
        widgets.filter_image(np.zeros((4, 4, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="at least 1; got 0"):
        data.sample_image(size=0)


def test_windows_and_uncovered_inputs():
    assert widgets.window_starts(5, 3, stride=2, padding=1) == [[-1, 0, 1], [1, 2, 3], [3, 4, 5]]
    assert widgets.uncovered(10, 3, stride=3) == [9]
    assert widgets.uncovered(7, 3, stride=2, padding=1) == []
    assert widgets.uncovered(9, 2, stride=1, dilation=3) == []


def test_parse_kernel_accepts_rows_and_explains_errors():
    np.testing.assert_array_equal(widgets.parse_kernel("1, 2; 3 4"), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(widgets.parse_kernel("1 0\n0 1"), np.eye(2))
    with pytest.raises(ValueError, match="could not read"):
        widgets.parse_kernel("1 x; 2 3")
    with pytest.raises(ValueError, match="same number of values"):
        widgets.parse_kernel("1 2; 3")
    np.testing.assert_array_equal(widgets.parse_kernel("[[1, 2], [3, 4]]"), [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="type a kernel"):
        widgets.parse_kernel(" ; ")
    with pytest.raises(ValueError, match="finite numbers"):
        widgets.parse_kernel("nan 1; 1 1")


def test_filter_image_keeps_size_and_matches_conv2d():
    rng = np.random.default_rng(0)
    image = rng.random((9, 11)).astype(np.float32)
    np.testing.assert_allclose(
        widgets.filter_image(image, widgets.KERNELS["identity"]), image, atol=1e-6
    )
    sobel = np.array(widgets.KERNELS["Sobel x"], dtype=np.float32)
    expected = torch.nn.functional.conv2d(
        torch.from_numpy(image)[None, None], torch.from_numpy(sobel)[None, None], padding=1
    )
    np.testing.assert_allclose(
        widgets.filter_image(image, sobel), expected[0, 0].numpy(), atol=1e-5
    )
    blurred = widgets.filter_image(np.ones((6, 6), np.float32), widgets.KERNELS["blur (lecture)"])
    assert blurred[2:4, 2:4].tolist() == [[1.0, 1.0], [1.0, 1.0]], (
        "normalised blur keeps brightness"
    )
    assert widgets.filter_image(image, np.ones((2, 4))).shape == image.shape, (
        "even kernels keep the size too"
    )


def test_builders_construct_headless():
    import ipywidgets
    import matplotlib

    matplotlib.use("Agg")
    explorer = widgets.output_size_explorer()
    assert isinstance(explorer, ipywidgets.VBox)
    sliders = [w for box in explorer.children[:2] for w in box.children]
    assert [s.description for s in sliders] == ["input", "kernel", "stride", "padding", "dilation"]
    picture = explorer.children[-1]
    assert isinstance(picture, ipywidgets.Image) and bytes(picture.value).startswith(b"\x89PNG")
    for slider in sliders:  # every control redraws the picture (no Output widget involved)
        before = bytes(picture.value)
        slider.value = slider.max if slider.value != slider.max else slider.min
        assert bytes(picture.value) != before, slider.description
    kernels = widgets.kernel_explorer({"noise": np.random.default_rng(1).random((16, 16))})
    menus, message, shown = kernels.children
    before = bytes(shown.value)
    menus.children[1].value = "Sobel x"
    assert bytes(shown.value) != before
    menus.children[1].value = "typed"
    menus.children[2].value = "not numbers"  # the error is shown in the message line, not raised
    assert "number" in message.value and isinstance(kernels, ipywidgets.VBox)
    menus.children[2].value = "0 1 0; 1 -4 1; 0 1 0"
    assert message.value == "" and bytes(shown.value).startswith(b"\x89PNG")


def test_an_explorer_says_how_to_use_it_in_an_output_that_needs_no_kernel(monkeypatch):
    import IPython.display
    import matplotlib

    matplotlib.use("Agg")
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    explorer = widgets.output_size_explorer()
    explorer._ipython_display_()
    note, widget = shown
    assert "running Python kernel" in note[0].data and "run this cell" in note[0].data
    assert "application/vnd.jupyter.widget-view+json" in widget[0] and widget[1] == {"raw": True}
    assert widget[0]["application/vnd.jupyter.widget-view+json"]["model_id"] == explorer.model_id


def test_an_instructors_nbconvert_saves_the_explorers_as_image_widgets(tmp_path):
    """`jupyter nbconvert --to notebook --execute` in this environment (ipywidgets 8, where an
    explorer displays through ``_repr_mimebundle_``) finishes and saves each explorer's Image
    widget and no Output widget (nbclient can hang on one, its issue 312). `make test-colab`
    checks the release notebooks the same way under Colab's ipywidgets 7."""
    import nbformat

    path = tmp_path / "explorers.ipynb"
    gallery = '{"noise": np.random.default_rng(1).random((16, 16))}'
    nbformat.write(nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import numpy as np\nfrom course_utils import widgets"),
        nbformat.v4.new_code_cell("widgets.output_size_explorer()"),
        nbformat.v4.new_code_cell(f"widgets.kernel_explorer({gallery})"),
    ]), path)  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=120", "--ExecutePreprocessor.shutdown_kernel=immediate",
         "--output-dir", str(tmp_path / "out"), str(path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    executed = nbformat.read(tmp_path / "out" / path.name, as_version=4)
    state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    models = [model["model_name"] for model in state.values()]
    assert models.count("ImageModel") == 2 and "OutputModel" not in models, models
    for cell in executed.cells[1:]:  # the note for a reopened copy, then the widget's view
        note, view = cell.outputs
        assert "running Python kernel" in note.data["text/html"]
        assert view.data["application/vnd.jupyter.widget-view+json"]["model_id"] in state
