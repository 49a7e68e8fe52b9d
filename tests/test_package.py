"""The package itself: import without side effects, setup(), the flags, data and plots."""

import subprocess
import sys

import numpy as np
import pytest

import course_utils
from course_utils import data, env, viz


def test_import_loads_no_heavy_library_and_prints_nothing():
    code = (
        "import sys, course_utils\n"
        "heavy = [m for m in ('torch', 'torchvision', 'sklearn', 'matplotlib', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_setup_prints_one_line_and_seeds_reproducibly(capsys, monkeypatch):
    import torch

    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    config = course_utils.setup(seed=3)
    first = torch.rand(3)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "device cpu" in out and "seed 3" in out and "FAST" in out and "offline" in out
    course_utils.setup(seed=3, quiet=True)
    assert torch.equal(first, torch.rand(3))
    assert config.fast and config.offline and config.device.type == "cpu"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), (" Yes ", True), ("0", False), ("off", False), ("", False)],
)
def test_flags_read_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_OFFLINE", value)
    assert env.is_offline() is expected


@pytest.mark.parametrize("name", ["COURSE_FAST", "COURSE_OFFLINE", "COURSE_CHECK_STRICT"])
@pytest.mark.parametrize("typo", ["ture", "2", "y", "offline"])
def test_a_misspelt_flag_stops_setup_saying_which_values_work(monkeypatch, name, typo):
    monkeypatch.setenv(name, typo)
    with pytest.raises(ValueError, match=rf"{name}='{typo}' is neither on nor off; set it to 1"):
        course_utils.setup(quiet=True)


def test_threads_follow_the_environment_and_a_bad_count_says_how_to_fix_it(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("COURSE_THREADS", "1")
    try:
        assert course_utils.setup(quiet=True).threads == torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.delenv("COURSE_THREADS")
    assert env.threads() >= 1
    for bad in ("two", "0", "-1", "1.5"):
        monkeypatch.setenv("COURSE_THREADS", bad)
        with pytest.raises(ValueError, match=rf"COURSE_THREADS='{bad}'.*e\.g\. COURSE_THREADS=2"):
            env.threads()


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    assert env.data_dir() == tmp_path
    monkeypatch.delenv("COURSE_DATA_DIR")
    assert env.data_dir() == env.repo_root() / "data"


def test_mnist1d_is_deterministic_balanced_and_shaped():
    a, b = data.mnist1d(500, seed=4), data.mnist1d(500, seed=4)
    assert a.x.shape == (500, 40) and a.x.dtype == np.float32 and a.y.dtype == np.int64
    assert np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y)
    assert np.bincount(a.y).tolist() == [50] * 10
    assert not np.array_equal(a.x, data.mnist1d(500, seed=5).x)
    assert "generated" in a.source


def test_mnist1d_rejects_bad_sizes():
    with pytest.raises(ValueError, match="length >= 16"):
        data.mnist1d(10, length=8)


@pytest.mark.parametrize("name", sorted(data.SAMPLE_IMAGES))
def test_every_sample_photo_loads_offline_in_gray_and_colour_at_any_size(name, root):
    gray, colour = data.sample_image(name), data.sample_image(name, gray=False)
    assert gray.ndim == 2 and colour.shape == (*gray.shape, 3) and min(gray.shape) >= 256
    for image in (gray, colour):
        assert image.dtype == np.float32 and 0 <= image.min() < image.max() <= 1
    small = data.sample_image(name, gray=False, size=32)
    assert min(small.shape[:2]) == 32 and small.shape[2] == 3
    assert abs(small.mean() - colour.mean()) < 0.01  # area averaging keeps the brightness
    assert f'`"{name}"`' in (root / "data" / "README.md").read_text(), "document its provenance"


def test_an_unknown_sample_photo_names_the_choices():
    with pytest.raises(ValueError, match="choose one of.*china"):
        data.sample_image("lena")


def test_plots_return_figures():
    import matplotlib

    matplotlib.use("Agg")
    x = np.arange(6.0)
    figures = [
        viz.signal_kernel_output(x, [1, 2], np.convolve(x, [1, 2])),
        viz.matrix(np.eye(4), title="eye"),
        viz.signals_by_class(np.zeros((20, 40)), np.arange(20) % 10, per_class=2),
    ]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figures)
    assert figures[1].axes[0].get_title() == "eye"
    titles = [ax.get_title() for ax in figures[2].axes[:10]]  # the first row: one per label of y
    assert titles == [str(label) for label in range(10)]
    chosen = viz.signals_by_class(np.zeros((20, 40)), np.arange(20) % 10, classes=[3, 1])
    assert [ax.get_title() for ax in chosen.axes[:2]] == ["3", "1"] and len(chosen.axes) == 6


def test_architecture_diagrams_are_drawn_from_the_models_themselves():
    import matplotlib

    matplotlib.use("Agg")
    from course_utils import diagrams, models

    lenet = models.LeNet5().train()
    texts = [t.get_text() for t in diagrams.architecture(lenet, (1, 1, 32, 32)).axes[0].texts]
    assert lenet.training, "drawing must not leave the model in eval mode"
    assert texts[:6] == ["input", "1×32×32", "conv 6@5×5", "6×28×28", "avg pool 2×2/2", "6×14×14"]
    assert texts[-2:] == ["dense 10", "10"]
    alexnet = diagrams.architecture(models.AlexNet(), (1, 3, 227, 227)).axes[0].texts
    labels = [t.get_text() for t in alexnet]
    assert (
        labels.count("conv 256@5×5\n2 groups") == 1 and "256×6×6" in labels and labels[-1] == "1000"
    )


def test_depth_column_draws_the_chunk_and_one_cell_per_filter():
    import matplotlib

    matplotlib.use("Agg")
    from course_utils import diagrams

    fig = diagrams.depth_column((3, 32, 32), kernel=5, filters=6, at=(10, 7))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "input 3×32×32" in texts and "chunk 3×5×5" in texts and "output 6×28×28" in texts
    # three faces per box: the input, the chunk, the output and one cell per filter
    assert len(fig.axes[0].patches) == 3 * (3 + 6)
    with pytest.raises(ValueError, match="outside the 28 x 28 output"):
        diagrams.depth_column((3, 32, 32), kernel=5, at=(28, 0))
    for bad, needle in [
        (dict(input_shape=(32, 32)), "three sizes"),
        (dict(kernel=0), "at least 1"),
        (dict(kernel=40), "does not fit"),
        (dict(at=5), "output position"),
        (dict(depth_scale=float("nan")), "positive number"),
    ]:
        with pytest.raises(ValueError, match=needle):
            diagrams.depth_column(**bad)


@pytest.mark.parametrize(
    "make, frames, first_title",
    [
        (lambda a: a.slide_1d([0.0, 1, 2, 3], [1.0, -1]), 3, "out[0] = 0·1 + 1·(-1) = -1"),
        (lambda a: a.slide_2d(np.arange(12.0).reshape(3, 4), np.ones((2, 2))), 6, "= 10"),
    ],
)
def test_animations_have_one_frame_per_output_value(make, frames, first_title, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import animation

    from course_utils import animations

    titles = []
    real = animation.FuncAnimation

    def recording(fig, draw, **kwargs):  # keep each frame's title as the player draws it
        def drawn(i):
            draw(i)
            titles.append(fig.axes[0].get_title())

        return real(fig, drawn, **kwargs)

    monkeypatch.setattr(animation, "FuncAnimation", recording)
    html = make(animations).data
    assert html.count("data:image/png;base64") == frames
    assert first_title in titles[0]


def test_animations_refuse_what_they_cannot_draw():
    from course_utils import animations

    with pytest.raises(ValueError, match="longer than the signal"):
        animations.slide_1d([1.0, 2], [1.0, 2, 3])
    with pytest.raises(ValueError, match="must be a non-empty 2-D array"):
        animations.slide_2d(np.zeros(5), np.ones((2, 2)))
    with pytest.raises(ValueError, match="too long to draw"):
        animations.slide_1d(np.zeros(100), [1.0])
    with pytest.raises(ValueError, match="at most 64"):  # 100 frames of a 1 x 1 kernel
        animations.slide_2d(np.zeros((10, 10)), np.ones((1, 1)))
    with pytest.raises(ValueError, match="too large to draw"):
        animations.slide_2d(np.zeros((28, 28)), np.ones((21, 21)))
    with pytest.raises(ValueError, match="must hold real numbers"):
        animations.slide_1d("1 2 3", [1.0])
    with pytest.raises(ValueError, match="NaN"):
        animations.slide_1d([1.0, float("nan"), 2.0], [1.0])
