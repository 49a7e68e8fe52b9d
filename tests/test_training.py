"""Datasets (stand-ins and the fallback from the real path), the device loader, LeNet-5 and training."""

import os
import re

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from course_utils import datasets, models, train, viz
from course_utils.loader import DeviceLoader


@pytest.fixture
def online(monkeypatch, tmp_path):
    """The real download path with the network absent (this machine has none; the test is offline-safe)."""
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "_FAILED", {})
    monkeypatch.setattr(datasets, "_READABLE", set())
    import socket

    def no_network(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: no_network())
    return tmp_path


def test_unknown_dataset_and_split_are_named():
    with pytest.raises(
        ValueError, match="unknown dataset 'imagenet'; choose one of mnist, cifar10"
    ):
        datasets.load_dataset("imagenet")
    with pytest.raises(ValueError, match="mnist has no split 'val'; choose 'train' or 'test'"):
        datasets.load_dataset("mnist", "val")


def test_offline_mnist_standin_is_real_digits_with_a_fixed_split(capsys):
    train_set = datasets.load_dataset("mnist", "train")
    test_set = datasets.load_dataset("mnist", "test")
    line = capsys.readouterr().out
    assert line.count("\n") == 2 and "stand-in" in line and "COURSE_OFFLINE=1" in line
    assert train_set.standin and "handwritten digits" in train_set.source
    assert train_set.x.shape == (1257, 1, 28, 28) and test_set.x.shape == (540, 1, 28, 28)
    assert train_set.x.dtype == torch.float32 and 0 <= train_set.x.min() and train_set.x.max() <= 1
    assert torch.equal(datasets.load_dataset("mnist", "test", quiet=True).x, test_set.x)
    assert set(test_set.y.tolist()) == set(range(10))


def test_offline_cifar_standin_is_balanced_and_deterministic():
    data = datasets.load_dataset("cifar10", "test", quiet=True)
    assert data.x.shape[1:] == (3, 32, 32) and data.classes == datasets.SHAPES10_CLASSES
    assert torch.bincount(data.y).tolist() == [len(data) // 10] * 10
    x, y = datasets.shapes10(50, seed=7)
    x2, y2 = datasets.shapes10(50, seed=7)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_download_failure_falls_back_and_keeps_the_cache(online, capsys):
    cache = online / "MNIST" / "raw"
    cache.mkdir(parents=True)
    truncated = cache / "train-images-idx3-ubyte"
    truncated.write_bytes(b"\x00\x00\x08\x03 truncated")
    data = datasets.load_dataset("mnist", "train", root=online, timeout=1)
    out = capsys.readouterr().out
    assert data.standin and "stand-in" in out
    assert f"the cache in {online / 'MNIST'} could not be read" in out and "left as it is" in out
    assert truncated.read_bytes() == b"\x00\x00\x08\x03 truncated", (
        "nothing in the cache is deleted"
    )


def _mnist_cache(root, *, broken_test: bool) -> None:
    """A tiny MNIST cache in torchvision's raw format (idx files): 20 training and 10 test
    digits; ``broken_test`` truncates the test images."""
    import struct

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 20), ("t10k", 10)):
        images = (
            struct.pack(">IIII", 2051, n, 28, 28)
            + bytes(range(256)) * (n * 784 // 256)
            + bytes(n * 784 % 256)
        )
        if prefix == "t10k" and broken_test:
            images = images[:100]
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(images)
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            struct.pack(">II", 2049, n) + bytes(i % 10 for i in range(n))
        )


def test_both_splits_come_from_the_same_source(online, capsys):
    """A readable training split with a broken test split: both use the stand-in, said once
    per split, so a model is never trained on real MNIST and tested on the stand-in."""
    _mnist_cache(online, broken_test=False)
    real = datasets.load_dataset("mnist", "train", root=online, timeout=1)
    assert not real.standin and len(real) == 20 and real.source.startswith("torchvision MNIST")

    broken = online / "broken"
    _mnist_cache(broken, broken_test=True)
    train = datasets.load_dataset("mnist", "train", root=broken, timeout=1)
    test = datasets.load_dataset("mnist", "test", root=broken, timeout=1)
    out = capsys.readouterr().out
    assert train.standin and test.standin
    assert "its test split" in out and "every split uses the stand-in" in out


def test_a_split_that_breaks_after_another_was_read_stops_with_the_fix(online):
    _mnist_cache(online, broken_test=False)
    datasets.load_dataset("mnist", "train", root=online, timeout=1)
    (online / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"broken")
    with pytest.raises(RuntimeError, match="another split of mnist came from torchvision"):
        datasets.load_dataset("mnist", "test", root=online, timeout=1)


def test_no_network_and_no_cache_says_download_failed(online, capsys):
    data = datasets.load_dataset("cifar10", "test", root=online, timeout=1)
    assert data.standin and "download failed" in capsys.readouterr().out


def test_pad_to_centres_and_refuses_too_large():
    x = torch.ones(2, 1, 28, 28)
    padded = datasets.pad_to(x, 32)
    assert padded.shape == (2, 1, 32, 32) and padded.sum() == x.sum() and padded[0, 0, 2, 2] == 1
    with pytest.raises(ValueError, match="do not fit"):
        datasets.pad_to(torch.ones(1, 1, 40, 40), 32)


def test_device_loader_covers_every_example_once_per_epoch():
    x = torch.arange(10.0).view(10, 1, 1, 1).expand(10, 1, 4, 4).contiguous()
    y = torch.arange(10)
    loader = DeviceLoader(x, y, batch_size=4)
    seen = torch.cat([yb for _, yb in loader])
    assert len(loader) == 3 and sorted(seen.tolist()) == list(range(10))
    assert sorted(torch.cat([yb for _, yb in loader]).tolist()) == list(range(10))
    assert len(DeviceLoader(x, y, batch_size=4, drop_last=True)) == 2
    for xb, yb in loader:
        assert torch.equal(xb[:, 0, 0, 0], yb.float()), "images stay with their labels"


def test_device_loader_crop_and_flip_are_per_image_and_label_preserving():
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    y = torch.zeros(64, dtype=torch.long)
    xb, _ = next(iter(DeviceLoader(x, y, batch_size=64, crop_padding=1, flip=True, shuffle=False)))
    assert xb.shape == x.shape
    distinct = {tuple(img.flatten().tolist()) for img in xb}
    assert len(distinct) > 5, "different images get different crops/flips"
    for img in xb:  # every crop is a shifted (maybe mirrored) window of the zero-padded original
        padded = torch.nn.functional.pad(x[0], (1, 1, 1, 1))
        windows = [padded[:, i : i + 4, j : j + 4] for i in range(3) for j in range(3)]
        assert any(torch.equal(img, w) or torch.equal(img, w.flip(-1)) for w in windows)


def test_device_loader_rejects_mismatched_data():
    with pytest.raises(ValueError, match="x has 3 images but y has 2 labels"):
        DeviceLoader(torch.zeros(3, 1, 2, 2), torch.zeros(2), batch_size=1)
    with pytest.raises(ValueError, match=r"x must be \(N, C, H, W\)"):
        DeviceLoader(torch.zeros(3, 4), torch.zeros(3), batch_size=1)


def test_lenet5_has_the_papers_sizes_and_parameter_count():
    model = models.LeNet5()
    assert sum(p.numel() for p in model.parameters()) == 61_706
    h = torch.zeros(2, 1, 32, 32)
    shapes = []
    for layer in model.features:
        h = layer(h)
        shapes.append(tuple(h.shape[1:]))
    assert shapes[::3] == [(6, 28, 28), (16, 10, 10), (120, 1, 1)]
    assert shapes[2] == (6, 14, 14) and shapes[5] == (16, 5, 5)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 10)


def test_lenet5_explains_a_wrong_input_size():
    with pytest.raises(
        ValueError, match=r"expects input \(N, 1, 32, 32\); got \(2, 1, 28, 28\) \(pad MNIST"
    ):
        models.LeNet5()(torch.zeros(2, 1, 28, 28))
    with pytest.raises(
        ValueError, match=r"\(one image\? add the batch dimension: x.unsqueeze\(0\); pad MNIST"
    ):
        models.LeNet5()(torch.zeros(1, 28, 28))
    with pytest.raises(
        ValueError, match=r"SmallCNN expects colour images \(N, 3, H, W\); got \(2, 1, 8, 8\)$"
    ):
        models.SmallCNN(num_classes=10)(torch.zeros(2, 1, 8, 8))


def test_fit_learns_and_records_history():
    torch.manual_seed(0)
    data = datasets.load_dataset("mnist", "train", quiet=True)
    x = datasets.pad_to(data.x[:256], 32)
    loader = DeviceLoader(x, data.y[:256], batch_size=32)
    model = models.LeNet5(activation="relu")
    history = train.fit(
        model,
        loader,
        epochs=4,
        lr=3e-3,
        val=DeviceLoader(x, data.y[:256], batch_size=128, shuffle=False),
        progress=False,
    )
    assert history["epoch"] == [1, 2, 3, 4]
    with pytest.raises(KeyError, match="no 'val_accuracy'; it records epoch, train_loss"):
        history["val_accuracy"]
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history.last["val_acc"] > 0.5
    assert viz.learning_curves(history, labels=["relu"]).axes[1].get_title() == "accuracy"


def test_fit_names_a_shape_device_or_dtype_mismatch_between_model_and_data():
    loader = DeviceLoader(torch.zeros(8, 1, 28, 28), torch.zeros(8, dtype=torch.long), batch_size=4)
    with pytest.raises(
        ValueError, match=r"cannot take batches of shape \(4, 1, 28, 28\): LeNet5 expects input"
    ):
        train.fit(models.LeNet5(), loader, epochs=1, progress=False)
    with pytest.raises(
        ValueError,
        match=r"images are on cpu and the labels on cpu, but the model is on meta: give the De",
    ):
        train.fit(models.LeNet5().to("meta"), loader, epochs=1, progress=False)
    y = torch.zeros(8, dtype=torch.long)
    pixels = DeviceLoader(torch.zeros(8, 1, 32, 32, dtype=torch.uint8), y, batch_size=4)
    with pytest.raises(
        ValueError,
        match=re.escape("images are torch.uint8 but the model's weights are torch.float32: conv"),
    ) as error:
        train.fit(models.LeNet5(), pixels, epochs=1, progress=False)
    assert str(error.value).endswith("x.to(torch.float32) / 255 (pixels of 0..255 become 0..1)")
    doubles = DeviceLoader(torch.zeros(8, 1, 32, 32, dtype=torch.float64), y, batch_size=4)
    with pytest.raises(ValueError, match=re.escape("before training: x.to(torch.float32)") + "$"):
        train.fit(models.LeNet5(), doubles, epochs=1, progress=False)


def test_fit_checks_the_labels_and_logits_before_training():
    """On a GPU a label beyond the last output is a device-side assert that ends the session."""
    x = torch.zeros(8, 1, 32, 32)
    labels = {
        "labels run from 0 to 101 but the model has 10 outputs: build it with num_classes=102": (
            torch.tensor([0, 101, 2, 3, 4, 5, 6, 7])
        ),
        "labels must be class indices, integers of shape (N,); got torch.float32": torch.zeros(8),
    }
    for message, y in labels.items():
        loader = DeviceLoader(x, y, batch_size=4, shuffle=False)
        with pytest.raises(ValueError, match=re.escape(message)):
            train.fit(models.LeNet5(), loader, epochs=1, progress=False)
    unflattened = nn.Sequential(nn.Conv2d(1, 10, 32))  # (N, 10, 1, 1): no flatten before the loss
    loader = DeviceLoader(x, torch.zeros(8, dtype=torch.long), batch_size=4)
    with pytest.raises(ValueError, match=re.escape("returns shape (1, 10, 1, 1) for one image")):
        train.fit(unflattened, loader, epochs=1, progress=False)


def test_fit_refuses_an_unknown_scheduler_and_empty_data():
    loader = DeviceLoader(torch.zeros(8, 1, 32, 32), torch.zeros(8, dtype=torch.long), batch_size=4)
    with pytest.raises(
        ValueError, match=r'scheduler must be None, "onecycle" or "cosine"; got \'one-cycle\''
    ):
        train.fit(models.LeNet5(), loader, epochs=1, scheduler="one-cycle", progress=False)
    empty = DeviceLoader(torch.zeros(0, 1, 32, 32), torch.zeros(0, dtype=torch.long), batch_size=4)
    with pytest.raises(ValueError, match="the training data yields no batches"):
        train.fit(models.LeNet5(), empty, epochs=1, progress=False)


def test_fit_checks_the_validation_data_before_the_first_epoch():
    loader = DeviceLoader(torch.zeros(8, 1, 32, 32), torch.zeros(8, dtype=torch.long), batch_size=4)
    empty = DeviceLoader(torch.zeros(0, 1, 32, 32), torch.zeros(0, dtype=torch.long), batch_size=4)
    digits = DeviceLoader(torch.zeros(8, 1, 28, 28), torch.zeros(8, dtype=torch.long), batch_size=4)
    model = models.LeNet5()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"validation data \(val\) yields no batches"):
        train.fit(model, loader, epochs=1, val=empty, progress=False)
    with pytest.raises(
        ValueError, match=r"in the validation data \(val\): the model cannot take batches of shape"
    ):
        train.fit(model, loader, epochs=1, val=digits, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    with pytest.raises(ValueError, match="evaluate got no batches"):
        train.evaluate(model, empty)


def test_fits_first_batch_check_leaves_batch_norm_alone():
    """A ResNet on 32x32 images ends in 1x1 maps: batch norm in train mode refuses one image there,
    and the check's single image must not enter the running statistics either."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    states = []
    model.layer4.register_forward_pre_hook(lambda module, args: states.append(module.training))
    history = train.fit(model, DeviceLoader(x, y, batch_size=4), epochs=1, progress=False)
    assert len(history) == 1 and states == [False, True, True]  # the check, then two batches
    assert int(model.bn1.num_batches_tracked) == 2  # the two batches; the check added none


def test_precision_policy_on_cpu():
    assert train.precision(torch.device("cpu")) == (None, False)


@pytest.mark.parametrize(
    ("capability", "policy"),
    [
        ((7, 5), (torch.float16, True)),
        ((8, 0), (torch.bfloat16, False)),
        ((9, 0), (torch.bfloat16, False)),
    ],
)
def test_precision_policy_by_compute_capability(monkeypatch, capability, policy):
    """A T4 (7.5, Colab's free GPU) gets fp16 with a gradient scaler; A100 and H100 get bf16."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert train.precision(torch.device("cuda", 0)) == policy


@pytest.mark.parametrize(
    ("setting", "policy", "words"),
    [
        ("fp16", (torch.float16, True), "fp16 with a gradient scaler (COURSE_PRECISION=fp16)"),
        ("FP32", (None, False), "fp32 (COURSE_PRECISION=fp32)"),
        ("auto", (torch.bfloat16, False), "bf16"),
        ("", (torch.bfloat16, False), "bf16"),
    ],
)
def test_course_precision_forces_the_t4_path_on_a_newer_gpu(monkeypatch, setting, policy, words):
    """COURSE_PRECISION=fp16 runs Colab's T4 path (fp16 and a gradient scaler) on an H100."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setenv("COURSE_PRECISION", setting)
    assert train.precision(torch.device("cuda", 0)) == policy
    assert train.describe_precision(torch.device("cuda", 0)) == words
    assert train.precision(torch.device("cpu")) == (None, False)  # the CPU stays fp32


def test_a_misspelt_course_precision_is_named(monkeypatch):
    monkeypatch.setenv("COURSE_PRECISION", "half")
    with pytest.raises(ValueError, match=r"COURSE_PRECISION='half' is not one of auto, fp16"):
        train.precision(torch.device("cpu"))


def test_fp16_with_a_gradient_scaler_trains(monkeypatch):
    """The T4 path of fit (fp16 autocast, GradScaler, unscale before clipping, one-cycle), run on
    the CPU: it must run the layers in fp16 and still learn."""
    monkeypatch.setattr(train, "precision", lambda device: (torch.float16, True))
    torch.manual_seed(0)
    x = torch.randn(256, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long()
    loader = [(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)]
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
    dtypes = []
    model[0].register_forward_hook(lambda module, inputs, out: dtypes.append(out.dtype))
    history = train.fit(
        model,
        loader,
        epochs=5,
        lr=1e-2,
        val=loader,
        scheduler="onecycle",
        max_grad_norm=1.0,
        progress=False,
    )
    # every training and evaluation step of 5 epochs x 8 batches ran in fp16; only fit's checks
    # of the first training and validation batch, before training, ran outside autocast
    assert dtypes.count(torch.float16) == 2 * 5 * 8 and dtypes.count(torch.float32) == 2
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert history["train_loss"][-1] < 0.8 * history["train_loss"][0]
    assert history.last["val_acc"] > 0.75


def test_train_or_load_saves_verifies_and_refuses(tmp_path):
    path = tmp_path / "ckpt" / "lenet.pt"
    calls = []
    model, loaded = train.train_or_load(models.LeNet5(), path, lambda m: calls.append(1))
    assert not loaded and calls == [1] and path.exists()
    assert (tmp_path / "ckpt" / "lenet.pt.sha256").read_text().split()[0] == train.sha256(path)
    again, loaded = train.train_or_load(models.LeNet5(), path, lambda m: calls.append(2))
    assert loaded and calls == [1]
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    )

    with pytest.raises(train.CheckpointError, match="different architecture"):
        train.train_or_load(models.LeNet5(num_classes=4), path, lambda m: None)
    original = path.read_bytes()
    path.write_bytes(original[:-10] + b"0123456789")
    with pytest.raises(train.CheckpointError, match="does not match its sha256"):
        train.train_or_load(models.LeNet5(), path, lambda m: None)
    assert path.exists() and os.path.getsize(path) == len(original), (
        "a bad checkpoint is never deleted"
    )


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: models.LeNet5(activation="gelu"), "'tanh' or 'relu'; got 'gelu'"),
        (lambda: models.LeNet5(pooling="min"), "'avg' or 'max'; got 'min'"),
        (lambda: models.AlexNet(input_size=32, width=0), "must be positive; got 0"),
        (lambda: models.LRN(0), "size >= 1 channels; got size=0"),
        (
            lambda: DeviceLoader(torch.zeros(4, 1, 2, 2), torch.zeros(4), batch_size=0),
            "batch_size must be a whole number >= 1; got 0",
        ),
        (
            lambda: DeviceLoader(
                torch.zeros(4, 1, 2, 2), torch.zeros(4), batch_size=2, crop_padding=-1
            ),
            "crop_padding must be a whole number >= 0; got -1",
        ),
        (lambda: viz.images([]), "each (H, W) or (H, W, 3), or tensors (C, H, W); got none"),
        (lambda: viz.images([torch.zeros(4, 4, 2)]), "got shape (4, 4, 2)"),
        (lambda: viz.kernels(torch.zeros(3, 5)), "(C_out, kh, kw); got (3, 5)"),
        (lambda: viz.learning_curves(), "got 0 histories and 0 labels"),
    ],
)
def test_bad_arguments_are_refused_saying_what_was_wrong(call, needle):
    with pytest.raises(ValueError) as error:
        call()
    assert needle in str(error.value)


def test_device_loader_takes_arrays_and_names_a_missing_gpu():
    x, y = np.arange(32, dtype=np.float32).reshape(2, 1, 4, 4), [1, 0]
    batch_x, batch_y = next(iter(DeviceLoader(x, y, batch_size=2, shuffle=False)))
    assert torch.equal(batch_x, torch.from_numpy(x)) and batch_y.tolist() == y
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda', but torch finds no CUDA device here"):
            DeviceLoader(x, y, batch_size=2, device="cuda")


def test_plots_take_tensors_as_training_leaves_them():
    """A batch as it comes from a loader or a model: (N, C, H, W), bfloat16, needing grad."""
    batch = torch.rand(2, 3, 4, 5, dtype=torch.bfloat16, requires_grad=True) * 1
    fig = viz.images(batch)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (4, 5, 3) and torch.equal(
        torch.from_numpy(shown.data).float(), batch[0].detach().float().permute(1, 2, 0)
    )
    gray = viz.images(torch.rand(2, 1, 4, 5)).axes[1].images[0].get_array()
    assert gray.shape == (4, 5)
    weight = nn.Conv2d(3, 4, 3).weight.bfloat16()
    assert len(viz.kernels(weight).axes[0].images) == 1
    maps = viz.feature_maps(torch.rand(3, 6, 6, dtype=torch.bfloat16, requires_grad=True) * 1)
    assert len([ax for ax in maps.axes if ax.images]) == 3
    signal = torch.randn(6, requires_grad=True) * 1
    assert len(viz.signal_kernel_output(signal, signal[:2], signal).axes) == 3
    assert viz.matrix(signal.reshape(2, 3)).axes[0].images[0].get_array().shape == (2, 3)


def test_fit_keeps_the_default_layout_where_channels_last_would_break_the_model():
    """channels_last is only a speed-up: a Conv3d network, and a forward pass that calls .view on
    a convolution's output (fine in the default layout, an error in channels_last), still train,
    and the model works afterwards as it did before."""

    class ViewNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.head = nn.Conv2d(3, 4, 3), nn.Linear(144, 3)

        def forward(self, x):
            return self.head(torch.relu(self.conv(x)).view(x.size(0), -1))

    volume = nn.Sequential(nn.Conv3d(1, 2, 3), nn.Flatten(), nn.Linear(16, 3))
    for model, shape in ((ViewNet(), (4, 3, 8, 8)), (volume, (4, 1, 4, 4, 4))):
        batches = [(torch.randn(shape), torch.randint(0, 3, (4,)))] * 2
        history = train.fit(model, batches, epochs=1, progress=False)
        assert len(history.records) == 1
        assert model(batches[0][0]).shape == (4, 3)


def test_fit_trains_a_convolutional_network_in_channels_last():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(1), nn.Linear(144, 3))
    train.fit(
        model, [(torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,)))], epochs=1, progress=False
    )
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
