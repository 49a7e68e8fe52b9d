"""The online path of notebook 10, run on local files in torchvision's own formats: pretrained
weights in the cache under the file name torchvision expects, Flowers-102 in its layout; and
every way it can fail, each with one clear line."""

import hashlib
import socket

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision
from PIL import Image

from course_utils import datasets, pretrained, transfer
from course_utils.transfer_methods import Budget, Experiment

RESNET18 = torchvision.models.ResNet18_Weights.IMAGENET1K_V1


@pytest.fixture
def no_network(monkeypatch):
    """Online mode, but every connection fails at once (as on this machine and in CI)."""
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(pretrained, "_FAILED", {})
    monkeypatch.setattr(datasets, "_FAILED", {})

    def refuse(*args, **kwargs):
        raise OSError("no network (test)")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def cached_weights(folder, name="resnet18", weights=RESNET18, seed=0):
    """A randomly initialised ``name`` saved where torchvision looks for ``weights``' file."""
    torch.manual_seed(seed)
    state = torchvision.models.get_model(name, weights=None).state_dict()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / weights.url.rsplit("/", 1)[1]
    torch.save(state, path)
    return path, state


def make_flowers(root, monkeypatch, per_split=(3, 2, 4), classes=3):
    """A few Flowers-102 photos in torchvision's layout (jpg/, imagelabels.mat, setid.mat), with
    torchvision's expected checksums of the two .mat files set to these files' own."""
    from scipy.io import savemat

    base = root / "flowers-102"
    (base / "jpg").mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels, ids, next_id = [], {"trnid": [], "valid": [], "tstid": []}, 1
    for key, per_class in zip(ids, per_split, strict=True):
        for c in range(classes):
            for _ in range(per_class):
                pixels = rng.integers(0, 256, size=(60 + next_id % 7, 80, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(base / "jpg" / f"image_{next_id:05d}.jpg")
                labels.append(c + 1)  # the .mat files count classes from 1
                ids[key].append(next_id)
                next_id += 1
    savemat(base / "imagelabels.mat", {"labels": np.asarray(labels)})
    savemat(base / "setid.mat", {k: np.asarray(v) for k, v in ids.items()})
    md5 = {
        name: hashlib.md5((base / name).read_bytes()).hexdigest()
        for name in ("imagelabels.mat", "setid.mat")
    }
    files = dict(torchvision.datasets.Flowers102._file_dict)
    files["label"] = ("imagelabels.mat", md5["imagelabels.mat"])
    files["setid"] = ("setid.mat", md5["setid.mat"])
    monkeypatch.setattr(torchvision.datasets.Flowers102, "_file_dict", files)
    return base


def test_cached_weights_load_through_the_weights_api_with_their_transforms(tmp_path, no_network):
    path, state = cached_weights(tmp_path / "weights")
    loaded = pretrained.load("resnet18", root=tmp_path / "weights")
    assert not loaded.standin and loaded.weights == "ResNet18_Weights.IMAGENET1K_V1"
    assert torch.equal(loaded.model.state_dict()["conv1.weight"], state["conv1.weight"])
    assert not loaded.model.training and len(loaded.categories) == 1000
    assert loaded.transforms(torch.rand(3, 300, 400)).shape == (3, 224, 224)
    assert path.exists()


def test_a_corrupt_cached_weights_file_falls_back_in_one_line_and_is_kept(
    tmp_path, no_network, capsys
):
    path, _ = cached_weights(tmp_path / "weights")
    path.write_bytes(path.read_bytes()[:1000])
    loaded = pretrained.load("resnet18", root=tmp_path / "weights")
    out = capsys.readouterr().out
    assert loaded.standin and out.count("\n") == 1
    assert f"the cached weights {path} could not be read" in out and "delete it" in out
    assert path.stat().st_size == 1000


def test_weights_of_another_architecture_under_the_name_are_refused(tmp_path, no_network, capsys):
    cached_weights(
        tmp_path / "weights", name="resnet34"
    )  # resnet34's weights, resnet18's file name
    assert pretrained.load("resnet18", root=tmp_path / "weights").standin
    assert "do not fit resnet18" in capsys.readouterr().out


def test_a_failed_download_falls_back_and_is_not_retried(tmp_path, no_network, capsys, monkeypatch):
    first = pretrained.load("alexnet", root=tmp_path)
    assert first.standin and "download failed" in capsys.readouterr().out
    monkeypatch.setattr(pretrained, "_torchvision", lambda *a: pytest.fail("tried again"))
    assert pretrained.load("alexnet", root=tmp_path).standin


def test_offline_mode_returns_the_shipped_source_network(capsys):
    loaded = pretrained.load("resnet18")
    assert loaded.standin and loaded.transforms is None and len(loaded.categories) == 10
    assert "offline mode (COURSE_OFFLINE=1)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "weights", "message"),
    [
        ("resnet19", "DEFAULT", "did you mean resnet18"),
        ("resnet18", "IMAGENET1K_V3", "choose one of DEFAULT, IMAGENET1K_V1"),
        ("resnet18", "AlexNet_Weights.IMAGENET1K_V1", "weights of another model"),
    ],
)
def test_names_torchvision_does_not_know_are_refused_even_offline(name, weights, message):
    with pytest.raises(ValueError, match=message):
        pretrained.load(name, weights)


def test_the_weights_table_covers_every_classification_weight_from_metadata():
    rows = pretrained.weights_table()
    models = torchvision.models.list_models(module=torchvision.models)
    assert len(rows) == sum(len(torchvision.models.get_model_weights(m)) for m in models)
    alexnet = next(r for r in rows if r["weights"] == "AlexNet_Weights.IMAGENET1K_V1")
    assert (alexnet["acc@1"], alexnet["acc@5"], round(alexnet["params_m"], 1)) == (
        56.522,
        79.066,
        61.1,
    )
    assert all(r["params_m"] > 0 and r["acc@1"] for r in rows if r["model"].startswith("resnet"))


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: torchvision.models.resnet18(weights=None), "fc"),
        (lambda: torchvision.models.alexnet(weights=None), "classifier.6"),
        (lambda: transfer.source_network(), "classifier.1"),
    ],
)
def test_the_classifier_is_found_and_replaced_for_new_labels(build, name):
    model = build()
    found, old = pretrained.find_classifier(model)
    assert found == name
    new = pretrained.replace_classifier(model, 7)
    assert model.get_submodule(name) is new and new.in_features == old.in_features
    assert model.eval()(
        torch.rand(2, 3, 64, 64) if name != "classifier.1" else torch.rand(2, 3, 32, 32)
    ).shape == (2, 7)


def test_a_network_without_a_linear_classifier_is_named():
    with pytest.raises(ValueError, match="found no nn.Linear classifier in SqueezeNet"):
        pretrained.replace_classifier(torchvision.models.squeezenet1_0(weights=None), 5)
    with pytest.raises(ValueError, match="num_classes must be a whole number"):
        pretrained.replace_classifier(nn.Sequential(nn.Linear(2, 2)), 0)


def test_flowers_in_torchvisions_layout_load_with_the_weights_transforms(
    tmp_path, monkeypatch, no_network
):
    make_flowers(tmp_path, monkeypatch)
    train = datasets.load_dataset(
        "flowers102", "train", root=tmp_path, transform=RESNET18.transforms()
    )
    test = datasets.load_dataset(
        "flowers102", "test", root=tmp_path, transform=RESNET18.transforms(), per_class=2
    )
    assert (
        not train.standin
        and train.x.shape == (9, 3, 224, 224)
        and train.y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    )
    assert (
        test.y.bincount().tolist() == [2, 2, 2] and "prepared by ImageClassification" in test.source
    )
    assert train.x.mean().abs() < 1 and train.x.min() < 0  # normalised as ImageNet's weights expect


def test_the_online_pair_runs_end_to_end_on_local_files(tmp_path, monkeypatch, no_network):
    """What a student online runs: ResNet-18 weights and Flowers-102 from the cache, then the
    notebook's methods on them (tiny budget)."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    make_flowers(tmp_path, monkeypatch)
    cached_weights(tmp_path / "weights")
    pair = transfer.load_pair("resnet18", eval_per_class=2)
    assert not pair.standin and pair.train.x.shape[1:] == (3, 224, 224) and len(pair.test) == 6
    experiment = Experiment(
        pair,
        budget=Budget(steps=1, batch_size=3, scratch_lrs=(1e-3,), scratch_steps=(1,)),
        progress=False,
    )
    for method in ("probe", "fine-tune", "norm-only", "random probe", "scratch"):
        assert 0.0 <= experiment.accuracy(method, 1, 0) <= 1.0
    assert experiment.source_features("train").shape == (9, 512)


def test_the_pair_falls_back_whole_when_flowers_is_missing(
    tmp_path, monkeypatch, no_network, capsys
):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    cached_weights(tmp_path / "weights")
    pair = transfer.load_pair("resnet18")
    assert pair.standin and pair.train.x.shape[1:] == (3, 32, 32)
    assert "Flowers-102 could not be had, so S falls back too" in capsys.readouterr().out
