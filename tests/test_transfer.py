"""The transfer-learning target (real path falls back, stand-in) and the shipped source network."""

import shutil

import pytest
import torch
from sklearn.linear_model import LogisticRegression

from course_utils import datasets, train, transfer


def test_flowers_standin_is_a_balanced_deterministic_new_label_set(capsys):
    data = datasets.load_dataset("flowers102", "train")
    assert "using the stand-in, newshapes10" in capsys.readouterr().out
    assert data.standin and data.x.shape == (1000, 3, 32, 32) and data.x.dtype == torch.float32
    assert data.y.bincount().tolist() == [100] * 10
    assert not set(data.classes) & set(datasets.SHAPES10_CLASSES), (
        "source and target labels must differ"
    )
    again = datasets.load_dataset("flowers102", "train", quiet=True)
    test = datasets.load_dataset("flowers102", "test", quiet=True)
    assert torch.equal(data.x, again.x) and not torch.equal(data.x, test.x)


def test_flowers_download_failure_falls_back(monkeypatch, tmp_path, capsys):
    import socket

    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "_FAILED", {})
    monkeypatch.setattr(
        socket.socket,
        "connect",
        lambda *a, **k: (_ for _ in ()).throw(OSError("no network (test)")),
    )
    data = datasets.load_dataset("flowers102", "test", root=tmp_path)
    assert data.standin and "download failed" in capsys.readouterr().out


def test_shipped_source_network_matches_its_recorded_hash_and_readme(root):
    path = transfer.source_path()
    assert path == root / "course_utils" / "assets" / "transfer_source.pt"
    recorded = path.with_suffix(".pt.sha256").read_text().split()[0]
    assert train.sha256(path) == recorded
    assert recorded in (root / "data" / "README.md").read_text(), (
        "list the shipped file's hash in data/README.md"
    )
    model = transfer.source_network()
    x, y = datasets.shapes10(200, seed=5)
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.9, f"the source network should know shapes10; got {accuracy:.2%}"


def test_a_tampered_or_missing_source_network_is_refused_and_kept(tmp_path, monkeypatch):
    for name in ("transfer_source.pt", "transfer_source.pt.sha256"):
        shutil.copy(transfer.source_path().parent / name, tmp_path / name)
    raw = (tmp_path / "transfer_source.pt").read_bytes()
    (tmp_path / "transfer_source.pt").write_bytes(raw[:-4] + b"oops")
    monkeypatch.setattr(transfer, "source_path", lambda: tmp_path / "transfer_source.pt")
    with pytest.raises(train.CheckpointError, match="does not match its sha256"):
        transfer.source_network()
    assert (tmp_path / "transfer_source.pt").stat().st_size == len(raw)
    monkeypatch.setattr(transfer, "source_path", lambda: tmp_path / "gone.pt")
    with pytest.raises(FileNotFoundError, match="reinstall the package"):
        transfer.source_network()


LOAD_SOURCE = (
    "import sys, torch; from course_utils import transfer, datasets; "
    "x, y = datasets.shapes10(100, seed=5); model = transfer.source_network(); "
    "print(transfer.source_path()); "
    "print((model(x).argmax(1) == y).float().mean().item())"
)


def _loads_the_source_network(python_path, cwd):
    """Run LOAD_SOURCE with only ``python_path`` added to the path, from ``cwd``; return the
    file it loaded and its shapes10 accuracy."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(python_path), "COURSE_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_SOURCE],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    path, accuracy = done.stdout.split()[-2:]
    return path, float(accuracy)


def test_the_source_network_ships_inside_a_pip_installed_package(root, tmp_path):
    """As in Colab: the package installed by pip, far from any checkout of the course."""
    import subprocess
    import sys

    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(
        root / "course_utils", source / "course_utils", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(source)],
        check=True, capture_output=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path, accuracy = _loads_the_source_network(site, elsewhere)
    assert path.startswith(str(site)) and accuracy > 0.9


def test_the_source_network_ships_in_the_student_release(root, tmp_path):
    from course_utils.instructor.release import build_release

    build_release(tmp_path / "release", repo_url="https://github.com/someone/cnn-course")
    path, accuracy = _loads_the_source_network(tmp_path / "release", tmp_path)
    assert path.startswith(str(tmp_path / "release")) and accuracy > 0.9


def test_source_features_beat_raw_pixels_with_five_labels_per_class():
    """The offline pair is a fair transfer target: frozen source features need few labels."""
    target = datasets.load_dataset("flowers102", "train", quiet=True)
    test = datasets.load_dataset("flowers102", "test", quiet=True)
    g = torch.Generator().manual_seed(0)
    index = torch.cat(
        [
            torch.nonzero(target.y == c).flatten()[torch.randperm(100, generator=g)[:5]]
            for c in range(10)
        ]
    )
    source = transfer.source_network()

    def feats(x):
        with torch.no_grad():
            return source.features(x).flatten(1).numpy()

    y, y_test = target.y[index].numpy(), test.y.numpy()
    probe = (
        LogisticRegression(max_iter=2000)
        .fit(feats(target.x[index]), y)
        .score(feats(test.x), y_test)
    )
    pixels = LogisticRegression(max_iter=2000).fit(target.x[index].flatten(1).numpy(), y)
    raw = pixels.score(test.x.flatten(1).numpy(), y_test)
    assert probe > 0.8 and probe > raw + 0.4, (probe, raw)


def test_flowers_photos_are_resized_to_square_float_tensors(monkeypatch, tmp_path):
    """The online conversion (torchvision's dataset replaced by three odd-sized photos)."""
    import numpy as np
    import torchvision.datasets
    from PIL import Image

    class ThreePhotos:
        classes = ["pink primrose", "sweet pea"]
        _labels = [0, 1, 0]

        def __init__(self, root, split, download, transform):
            self.transform = transform

        def __len__(self):
            return 3

        def __getitem__(self, i):
            pixels = np.random.default_rng(i).integers(
                0, 256, size=(80 + i, 100, 3), dtype=np.uint8
            )
            return self.transform(Image.fromarray(pixels)), i % 2

    monkeypatch.setattr(torchvision.datasets, "Flowers102", ThreePhotos)
    data = datasets._torchvision("flowers102", "train", tmp_path, False, 48, None, None)
    assert data.x.shape == (3, 3, 48, 48) and data.x.dtype == torch.float32
    assert 0.0 <= data.x.min() and data.x.max() <= 1.0
    assert data.y.tolist() == [0, 1, 0] and data.classes == ("pink primrose", "sweet pea")
    assert not data.standin and "Flowers102 (train, 3 photos resized to 48x48)" in data.source
