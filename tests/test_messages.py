"""Bad input met by a student or an instructor gets one line that says what was wrong and how
to fix it, never a raw traceback from inside the package."""

import pytest
import torch
import torch.nn as nn

from course_utils import check, doctor, models, train, viz
from course_utils.loader import DeviceLoader


def _data(n=64, label=None):
    x = torch.randn(n, 1, 8, 8)
    y = torch.arange(n) % 3
    if label is not None:
        y[-1] = label  # in the last batch only
    return x, y


def _net(classes=3):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, classes))


def test_fit_checks_every_label_not_only_the_first_batch():
    x, y = _data(label=10)
    loader = DeviceLoader(x, y, batch_size=16, shuffle=False)
    with pytest.raises(
        ValueError, match=r"training data's labels run from 0 to 10 but the model has 3 outputs"
    ):
        train.fit(_net(), loader, epochs=1, progress=False)
    batches = list(DeviceLoader(x, y, batch_size=16, shuffle=False))  # a plain list of batches
    with pytest.raises(ValueError, match="num_classes=11"):
        train.fit(_net(), batches, epochs=1, progress=False)
    clean = DeviceLoader(*_data(), batch_size=16)
    with pytest.raises(ValueError, match=r"validation data \(val\)'s labels run from 0 to 10"):
        train.fit(_net(), clean, epochs=1, progress=False, val=loader)


def test_fit_given_one_pair_of_tensors_says_to_make_batches():
    with pytest.raises(
        ValueError, match=r"one pair \(x, y\) of 64 examples.*DeviceLoader\(x, y, batch_size=64\)"
    ):
        train.fit(_net(), _data(), epochs=1, progress=False)
    with pytest.raises(
        ValueError, match=r"each batch of the training data must be a pair \(x, y\)"
    ):
        train.fit(_net(), [torch.zeros(4, 1, 8, 8)], epochs=1, progress=False)


def test_a_model_without_parameters_is_named():
    loader = DeviceLoader(*_data(), batch_size=16)
    with pytest.raises(ValueError, match=r"the model \(Sequential\) has no parameters"):
        train.fit(nn.Sequential(nn.Flatten()), loader, epochs=1, progress=False)
    with pytest.raises(ValueError, match="has no parameters"):
        train.evaluate(nn.Sequential(nn.Flatten()), loader)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 2.5}, "batch_size must be a whole number >= 1; got 2.5"),
        ({"batch_size": "32"}, r"batch_size must be a whole number >= 1; got '32' \(write batch_size=32\)"),
        ({"batch_size": True}, "batch_size must be a whole number >= 1; got True"),
        ({"batch_size": 8, "crop_padding": -1}, "crop_padding must be a whole number >= 0"),
        ({"batch_size": 8, "device": "gpu"}, r"device='gpu' is not a device torch knows: use config.device"),
    ],
)  # fmt: skip
def test_device_loader_names_a_bad_setting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeviceLoader(*_data(), **kwargs)


def test_device_loader_names_a_device_this_machine_lacks(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("mps", "cuda"):
        with pytest.raises(ValueError, match=rf"torch finds no {device.upper()} device here"):
            DeviceLoader(*_data(), batch_size=8, device=device)


def test_plots_name_a_wrong_shape_and_take_a_batch_of_one():
    maps = torch.rand(1, 4, 5, 5)
    assert len(viz.feature_maps(maps).axes) >= 4  # the batch of one is shown as its volume
    with pytest.raises(
        ValueError, match=r"one activation volume \(C, H, W\); got shape \(2, 4, 5, 5\): pick one"
    ):
        viz.feature_maps(torch.rand(2, 4, 5, 5))
    with pytest.raises(
        ValueError, match=r"viz.matrix shows a 2-D array .* got shape \(2, 3, 3\): pick one"
    ):
        viz.matrix(torch.rand(2, 3, 3))


def test_check_of_an_unknown_id_prints_a_line(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_CHECK_STRICT", raising=False)
    check("no-such-id")
    line = capsys.readouterr().out
    assert line.startswith("❌ no-such-id: unknown exercise id 'no-such-id'; known ids: ")


def test_alexnet_names_the_input_size_and_the_number_of_classes():
    with pytest.raises(ValueError, match=r"AlexNet\(input_size=32\)"):
        models.AlexNet(width=0.05)(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"AlexNet\(input_size=227\)"):
        models.AlexNet(input_size=32, width=0.1)(torch.zeros(1, 3, 227, 227))
    for build in (models.AlexNet, models.LeNet5, models.SmallCNN):
        with pytest.raises(ValueError, match="num_classes is the number of outputs"):
            build(num_classes=0)


def test_doctor_checks_the_hosts_torchvision_downloads_from():
    from torchvision import datasets

    hosts = doctor.download_hosts()
    flowers = datasets.Flowers102._download_url_prefix
    assert len(hosts) == 4 and any(host in flowers for host in hosts)
