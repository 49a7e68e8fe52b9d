"""Notebook 09's package: transformations, feature measurements, blurred subsampling, the shipped
networks, activation maximisation, and the exercises' checks naming their common mistakes."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from course_utils import datasets, features, invariance, invariance_nets, train, visualise
from course_utils.checks import Mismatch
from course_utils.checks import invariance as checks


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_shift_moves_right_and_down_with_zeros_or_wrapping():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    zeros = invariance.shift(x, 1, 1)
    assert zeros[0, 0].tolist() == [[0, 0, 0, 0], [0, 0, 1, 2], [0, 4, 5, 6]]
    wrapped = invariance.shift(x, -1, 0, mode="circular")
    assert wrapped[0, 0, 0].tolist() == [1, 2, 3, 0]
    assert torch.equal(invariance.shift(x, 0, 0), x)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: invariance.shift(x, 1.5), "whole number of pixels"),
        (lambda x: invariance.shift(x, 8), "below the image's size 8"),
        (lambda x: invariance.shift(x, 1, mode="reflect"), "mode must be one of"),
        (lambda x: invariance.shift(x[0], 1), "add the batch axis"),
        (lambda x: invariance.shift((x * 255).byte(), 1), "convert with x.float()"),
        (lambda x: invariance.affine(x, angle=400), r"angle \(degrees\) must be in"),
        (lambda x: invariance.affine(x, scale=True), "scale must be a number"),
        (lambda x: invariance.affine(x, scale=0), "scale must be"),
        (lambda x: invariance.shift(x.numpy(), 1), "must be a torch tensor"),
    ],
)
def test_bad_transformations_say_what_to_fix(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call(_x(2, 3, 8, 8))


def test_affine_is_exact_for_quarter_turns_and_the_identity():
    x = _x(2, 3, 6, 6)
    assert torch.allclose(invariance.affine(x, angle=90.0), torch.rot90(x, 1, (2, 3)), atol=1e-5)
    assert torch.allclose(invariance.affine(x), x, atol=1e-5)
    zoomed = invariance.affine(x, scale=2.0)
    assert zoomed.shape == x.shape and not torch.allclose(zoomed, x, atol=1e-2)


def test_layer_features_lists_the_layers_it_has():
    net = invariance_nets.ShapeNet()
    found = invariance.layer_features(net, _x(2, 3, 32, 32), ["conv1", "gap"])
    assert found["conv1"].shape == (2, 16, 32, 32) and found["gap"].shape == (2, 64)
    assert found["logits"].shape == (2, 10)
    with pytest.raises(KeyError, match="no layer 'conv9'.*its layers are: conv1, conv1.0"):
        invariance.layer_features(net, _x(2, 3, 32, 32), ["conv9"])


def test_curves_are_zero_change_and_unchanged_accuracy_without_a_transformation():
    net = invariance_nets.load("plain", 0)
    x, y = datasets.shapes10(60, seed=1, centre=0.15)
    run = invariance.curves(net, x, y, lambda images, _: images, [0, 1], ["conv1", "gap"])
    assert run.change["gap"] == [0.0, 0.0] and run.accuracy[0] == run.accuracy[1] > 0.9
    moved = invariance.curves(
        net, x, y, lambda im, s: invariance.shift(im, s, 0, mode="circular"), [3], ["conv1"]
    )
    assert 0.3 < moved.change["conv1"][0] < 2


def test_relative_change_is_per_example():
    a = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    b = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    assert invariance.relative_change(a, b).tolist() == [0.0, 1.0]
    for dtype in (torch.int64, torch.float16, torch.float64):  # each measured in float64
        assert invariance.relative_change(a.to(dtype), b.to(dtype)).tolist() == [0.0, 1.0]
    maps = _x(4, 8, 5, 5)
    moved = maps + 0.1 * _x(4, 8, 5, 5, seed=1)
    expected = (maps - moved).flatten(1).double().norm(dim=1) / maps.flatten(1).double().norm(dim=1)
    for layout in (torch.contiguous_format, torch.channels_last):  # the same in either layout
        got = invariance.relative_change(
            maps.contiguous(memory_format=layout), moved.contiguous(memory_format=layout)
        )
        assert torch.allclose(got, expected, rtol=1e-6)


class _ViewNet(torch.nn.Module):
    """A network that flattens a convolution's output with .view, which only the default layout
    allows; conv1 and gap as ShapeNet names them."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
        self.gap = torch.nn.Identity()
        self.fc = torch.nn.Linear(4 * 32 * 32, 10)

    def forward(self, x):
        maps = self.conv1(x)
        return self.fc(self.gap(maps.view(maps.shape[0], -1)))


class _ViewWhenSmall(torch.nn.Module):
    """Flattens its maps with .view (possible in the default layout only) for images under 32
    pixels wide, and counts its forward passes."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.gap = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        self.fc = torch.nn.Linear(4, 10)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        maps = self.conv1(x)
        if maps.shape[-1] < 32:
            maps = maps.view(maps.shape[0], -1).view(maps.shape)
        return self.fc(self.gap(maps))


def test_the_layout_falls_back_for_a_later_batch_and_a_real_mistake_is_raised_once():
    x, y = datasets.shapes10(8, seed=1)
    smaller = invariance.curves(
        _ViewWhenSmall(), x, y, lambda im, _: F.interpolate(im, size=16), [16], ["gap"]
    )
    assert len(smaller.accuracy) == 1 and smaller.change["gap"][0] > 0

    class Broken(_ViewWhenSmall):
        def forward(self, x):
            self.calls += 1
            raise RuntimeError("a mistake of the student's own")

    broken = Broken()
    with pytest.raises(RuntimeError, match="a mistake of the student's own") as raised:
        invariance.curves(broken, x, y, lambda im, _: im, [0], ["conv1"])
    assert broken.calls == 1 and raised.value.__context__ is None  # run once, one traceback


def test_measurements_read_in_channels_last_on_a_cpu_as_in_the_default_layout():
    """curves feeds its batches in channels-last on a CPU (faster max pooling): the same figures
    as the default layout; a network whose .view needs the default layout is read in it, by curves
    and by features.extract."""
    net = invariance_nets.load("plain", 0)
    x, y = datasets.shapes10(40, seed=1, centre=0.15)
    seen = []
    net.conv1.register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0]))
    run = invariance.curves(
        net, x, y, lambda im, s: invariance.shift(im, s, 0, mode="zeros"), [2], ["conv1", "gap"]
    )
    assert seen and all(t.is_contiguous(memory_format=torch.channels_last) for t in seen)
    with torch.no_grad():
        plain = invariance.layer_features(net, x, ["conv1", "gap"])
        moved = invariance.layer_features(net, invariance.shift(x, 2, 0, mode="zeros"), ["gap"])
    expected = invariance.relative_change(plain["gap"], moved["gap"]).mean().item()
    assert run.change["gap"][0] == pytest.approx(expected, rel=1e-5)
    assert run.accuracy[0] == (moved["logits"].argmax(1) == y).float().mean().item()
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        _ViewNet()(x.contiguous(memory_format=torch.channels_last))
    viewed = invariance.curves(_ViewNet(), x, y, lambda im, _: im, [0], ["conv1"])
    assert viewed.change["conv1"] == [0.0]
    read = features.extract(_ViewNet(), x, ["conv1.1", "fc"])  # notebook 10's reader: the same
    assert read["fc"].shape == (40, 10)
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
        invariance.curves(_ViewNet(), x[:, :, :16], y, lambda im, _: im, [0], ["conv1"])


def test_blur_pool_is_a_normalised_binomial_filter_that_removes_the_highest_frequency():
    assert (
        invariance.binomial_kernel(3).tolist()
        == (torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16).tolist()
    )
    x = _x(2, 3, 8, 8)
    kernel = invariance.binomial_kernel(3).expand(3, 1, 3, 3)
    expected = F.conv2d(F.pad(x, (1,) * 4, mode="reflect"), kernel, stride=2, groups=3)
    assert torch.allclose(invariance.BlurPool(3)(x), expected, atol=1e-6)
    stripes = torch.zeros(1, 1, 8, 8)
    stripes[..., ::2] = 1.0  # one pixel on, one off: subsampling alone keeps only the ones
    assert torch.allclose(invariance.BlurPool(1)(stripes), torch.full((1, 1, 4, 4), 0.5))
    assert torch.equal(stripes[..., ::2, ::2], torch.ones(1, 1, 4, 4))
    assert invariance.max_blur_pool(3)(x).shape == torch.nn.MaxPool2d(2)(x).shape


def test_shapes10_draws_the_same_images_moved_scaled_or_turned():
    x, y = datasets.shapes10(40, seed=3)
    assert torch.equal(datasets.shapes10(40, seed=3, angle=(0, 0))[0], x)
    disks = y == datasets.SHAPES10_CLASSES.index("disk")
    turned, same_y = datasets.shapes10(40, seed=3, angle=(37, 37))
    assert torch.equal(same_y, y) and torch.allclose(turned[disks], x[disks])
    assert not torch.allclose(turned[~disks], x[~disks])
    small = datasets.shapes10(40, seed=3, radius=(0.2, 0.2), centre=0.0)[0]
    large = datasets.shapes10(40, seed=3, radius=(0.8, 0.8), centre=0.0)[0]
    background = torch.stack([small[:, :, 0, 0], large[:, :, 0, 0]])
    assert torch.allclose(background[0], background[1], atol=0.2)  # same colours, other size
    for bad in ({"radius": (0.6, 0.3)}, {"radius": 0.4}, {"angle": (0, 720)}, {"centre": 2}):
        with pytest.raises(ValueError, match="must be"):
            datasets.shapes10(4, **bad)


def test_the_shipped_networks_load_verified_and_refuse_a_changed_file(tmp_path, monkeypatch):
    x, y = datasets.shapes10(100, seed=1)
    for variant in ("plain", "antialiased"):
        net = invariance_nets.load(variant, 2)
        with torch.no_grad():
            assert (net(x).argmax(1) == y).float().mean() > 0.95
    assert sum(p.numel() for p in net.parameters()) == 61_338
    with pytest.raises(KeyError, match="variants: plain, antialiased, scale, rotation"):
        invariance_nets.load("mirror", 0)
    copy = tmp_path / invariance_nets.FILE
    copy.write_bytes(invariance_nets.path().read_bytes()[:-4] + b"oops")
    sha = invariance_nets.path().with_suffix(".pt.sha256").read_text()
    copy.with_suffix(".pt.sha256").write_text(sha)
    monkeypatch.setattr(invariance_nets, "path", lambda: copy)
    with pytest.raises(train.CheckpointError, match="does not match its sha256"):
        invariance_nets.load("plain", 0)


def test_training_a_variant_follows_the_recipe(monkeypatch):
    monkeypatch.setitem(invariance_nets.RECIPE, "images", 200)
    monkeypatch.setitem(invariance_nets.RECIPE, "epochs", 1)
    net = invariance_nets.train_variant("rotation", 0)
    assert not net.training and isinstance(net.pool1, torch.nn.MaxPool2d)
    assert isinstance(invariance_nets.ShapeNet(antialias=True).pool1[1], invariance.BlurPool)


def test_ascent_raises_a_unit_and_regularised_pictures_are_smoother():
    net = invariance_nets.load("plain", 0)
    objective = visualise.channel_objective(net, "conv4.1", 3)
    start = visualise.Parameterisation(32, "pixel", seed=0)()
    with torch.no_grad():
        before = objective(start).item()
    naive = visualise.maximise(objective, steps=40, seed=0)
    smooth = visualise.maximise(objective, steps=40, seed=0, kind="fourier", robust=True)
    with torch.no_grad():
        assert objective(naive).item() > before + 1 and objective(smooth).item() > before + 1
    assert naive.shape == smooth.shape == (1, 3, 32, 32)
    assert 0 <= smooth.min() and smooth.max() <= 1
    assert visualise.high_frequency_share(naive) > visualise.high_frequency_share(smooth)
    with pytest.raises(KeyError, match="no layer 'conv7'"):
        visualise.channel_objective(net, "conv7", 0)
    with pytest.raises(IndexError, match="conv4.1 has 64 channels"):
        visualise.channel_objective(net, "conv4.1", 64)(start)
    with pytest.raises(ValueError, match='kind must be "pixel" or "fourier"'):
        visualise.Parameterisation(8, "wavelet")


def test_high_frequency_share_of_noise_and_of_a_smooth_image():
    noise = _x(4, 3, 32, 32)
    assert abs(visualise.high_frequency_share(noise) - 0.75) < 0.05
    wave = torch.cos(2 * math.pi * torch.arange(32.0) / 32).expand(1, 3, 32, 32)  # one period
    assert visualise.high_frequency_share(wave) < 1e-12


def test_top_examples_are_the_images_a_channel_likes_most():
    net = invariance_nets.load("plain", 0)
    x, _ = datasets.shapes10(50, seed=4)
    top, values = visualise.top_examples(net, "gap", 5, x, k=4)
    everything = invariance.layer_features(net, x, ["gap"])["gap"][:, 5]
    assert torch.equal(values, everything.sort(descending=True).values[:4])
    assert torch.equal(everything[top], values)


def test_photo_curves_run_the_online_path_on_an_imagenet_architecture():
    weights = torchvision.models.ResNet18_Weights.DEFAULT  # its transforms need no download
    model = torchvision.models.resnet18()  # random weights: only the plumbing is tested
    run = invariance.photo_curves(model, weights.transforms(), kind="rotation", amounts=[0, 90])
    assert list(run.change) == ["conv1", "avgpool"] and run.accuracy[0] == 1.0
    assert run.change["conv1"][1] > 0.1
    with pytest.raises(ValueError, match="kind must be one of shift, scale, rotation"):
        invariance.photo_curves(model, weights.transforms(), kind="flip", amounts=[0])


# ----------------------------------------------------------------------------- the checks


def _swapped(x, dx, dy, circular=False):
    return invariance.shift(x, dy, dx, mode="circular" if circular else "zeros")


def _zero_padded(x, stride=2):
    kernel = invariance.binomial_kernel(3).to(x.dtype).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1,) * 4), kernel, stride=stride, groups=x.shape[1])


def _descent(unit, x, lr, radius):
    x = x.detach().clone().requires_grad_()
    (grad,) = torch.autograd.grad(unit(x), x)
    x = x.detach() - lr * grad
    return x * min(1.0, radius / x.norm().item())


@pytest.mark.parametrize(
    "check, wrong, named",
    [
        (checks.check_shift_images, _swapped, "dx and dy are swapped"),
        (checks.check_blur_downsample, _zero_padded, "mode='reflect'"),
        (checks.check_ascent_step, _descent, "this is a descent step"),
    ],
)
def test_each_check_names_its_common_mistake(check, wrong, named):
    with pytest.raises(Mismatch, match=named):
        check(wrong)


def test_the_first_layer_optimum_under_a_norm_limit_is_the_normalised_filter():
    w = _x(3, 3, 3, seed=5).double()
    x = torch.zeros_like(w) + 0.01
    for _ in range(60):
        x = checks.reference_ascent_step(lambda p: (w * p).sum(), x, 0.2, 2.0)
    assert torch.allclose(x, 2.0 * w / w.norm(), atol=1e-6)
    assert math.isclose(x.norm().item(), 2.0)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda net, x, y: invariance.layer_features(net, x, "conv1"), TypeError, "a list"),
        (lambda net, x, y: invariance.layer_features(net, x.double(), ["conv1"]), TypeError,
         "convert with x.to"),
        (lambda net, x, y: invariance.curves(net, x, y.float(), lambda a, _: a, [0], ["gap"]),
         ValueError, "one whole-number class per image"),
        (lambda net, x, y: invariance.curves(net, x, y + 10, lambda a, _: a, [0], ["gap"]),
         ValueError, "labels must be in 0..9"),
        (lambda net, x, y: invariance.curves(net, x, y, lambda a, _: a[:2], [0], ["gap"]),
         ValueError, "returned 2 images for 6"),
        (lambda net, x, y: invariance.BlurPool(4)(x), ValueError, "blurs 4 channels; x has 3"),
        (lambda net, x, y: invariance.BlurPool(3, size=4), ValueError, "size must be odd"),
        (lambda net, x, y: visualise.top_examples(net, "gap", 0, x, k=9), ValueError,
         "from 1 to the 6 images"),
        (lambda net, x, y: visualise.maximise(lambda im: im.sum(), steps=0), ValueError,
         "steps must be a whole number of at least 1"),
        (lambda net, x, y: visualise.maximise(lambda im: 1.0, steps=1), TypeError,
         "one-number tensor"),
        (lambda net, x, y: invariance_nets.load("plain", 1.0), KeyError, "seeds: \\(0, 1, 2\\)"),
        (lambda net, x, y: invariance.relative_change(x, x[:2]), ValueError, "one shape"),
    ],
)  # fmt: skip
def test_bad_input_to_the_measurements_says_what_to_fix(call, error, message):
    net = invariance_nets.ShapeNet().eval()
    x, y = datasets.shapes10(6, seed=0)
    with pytest.raises(error, match=message):
        call(net, x, y)


def test_shapes10_takes_numpy_numbers_and_refuses_bools():
    x, _ = datasets.shapes10(3, angle=(np.int64(10), np.float32(10)))
    assert torch.equal(x, datasets.shapes10(3, angle=(10, 10))[0])
    with pytest.raises(ValueError, match="angle must be a"):
        datasets.shapes10(3, angle=(True, True))
