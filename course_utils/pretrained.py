"""Networks pretrained on a large source dataset S, from torchvision's weights API.

- :func:`load` gives an ImageNet-1K network (``torchvision.models.get_model_weights``, never
  ``pretrained=True``) with its own preprocessing (``weights.transforms()``) and label set. The
  weights file goes to the course's data folder (``data/weights/``), is downloaded with a network
  timeout and checked against the hash in its name, and is loaded with ``weights_only=True``.
  Offline, or when the download or the cached file fails, it returns the course's offline source
  network (``transfer.source_network()``: SmallCNN on shapes10) and says so in one line; nothing
  in the cache is deleted.
- :func:`weights_table` lists every classification weight torchvision knows, from its metadata
  alone (no download): accuracy on ImageNet-1K, parameters, GFLOPS, file size.
- :func:`find_classifier` / :func:`replace_classifier` find a network's last linear layer, the
  one tied to the source's labels, and put a new one for the target's labels in its place.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch.nn as nn

from course_utils.datasets import network_timeout
from course_utils.env import data_dir, is_offline

WEIGHTS_FOLDER = "weights"


@dataclass(frozen=True)
class Pretrained:
    """A source network h_S in eval mode, how to prepare its inputs and the labels it knows.

    ``transforms``: the weights' preprocessing (PIL image or uint8 tensor -> normalised float
    tensor (3, H, W)); None for the offline network, which takes images in [0, 1] as they are.
    """

    model: nn.Module
    name: str
    weights: str
    transforms: Callable | None
    categories: tuple[str, ...]
    source: str
    standin: bool


def _classification_models() -> list[str]:
    from torchvision import models

    return models.list_models(module=models)


def resolve_weights(name: str, weights="DEFAULT"):
    """torchvision's weights enum member for model ``name``: ``weights`` is "DEFAULT", a member
    name ("IMAGENET1K_V1"), a full name ("ResNet18_Weights.IMAGENET1K_V1") or a member itself."""
    from torchvision import models

    known = _classification_models()
    if name not in known:
        close = difflib.get_close_matches(str(name), known, n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise ValueError(
            f"torchvision has no classification model {name!r}: {hint}"
            f"(torchvision.models.list_models(module=torchvision.models) lists all {len(known)})"
        )
    enum = models.get_model_weights(name)
    if isinstance(weights, enum):
        return weights
    prefix, _, member = str(weights).rpartition(".")
    if prefix not in ("", enum.__name__):
        raise ValueError(f"{weights!r} are weights of another model; {name} takes {enum.__name__}")
    if member == "DEFAULT":
        return enum.DEFAULT
    if member not in enum.__members__:
        choices = ", ".join(["DEFAULT", *enum.__members__])
        raise ValueError(f"{name} has no weights {weights!r}; choose one of {choices}")
    return enum[member]


def weights_dir(root: Path | None = None) -> Path:
    """Where weights files are cached: ``<data folder>/weights``."""
    return Path(root) if root is not None else data_dir() / WEIGHTS_FOLDER


#: (weights, folder) -> why they could not be had; later calls do not try again.
_FAILED: dict[tuple[str, Path], str] = {}


class _Unavailable(Exception):
    """The weights could not be had; the message says why and what to do."""


def load(
    name: str = "resnet18",
    weights="DEFAULT",
    *,
    root: Path | None = None,
    timeout: float = 20.0,
    quiet: bool = False,
) -> Pretrained:
    """ImageNet-pretrained ``name`` with ``weights`` (see :func:`resolve_weights`), or, offline or
    when they cannot be had, the offline source network, announced in one line."""
    chosen = resolve_weights(name, weights)  # a typo is an error even offline
    full = f"{type(chosen).__name__}.{chosen.name}"
    folder = weights_dir(root)
    if is_offline():
        reason = "offline mode (COURSE_OFFLINE=1)"
    elif (full, folder) in _FAILED:
        reason = _FAILED[full, folder]
    else:
        try:
            return _torchvision(name, chosen, full, folder, timeout)
        except _Unavailable as exc:
            reason = _FAILED[full, folder] = str(exc)
    from course_utils.transfer import offline_source

    standin = offline_source()
    if not quiet:
        print(f"⚠ {full}: using the stand-in, {standin.source} ({reason})")
    return standin


def _torchvision(name: str, chosen, full: str, folder: Path, timeout: float) -> Pretrained:
    from torchvision import models

    cached = folder / Path(urlparse(chosen.url).path).name
    had_file = cached.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with network_timeout(timeout):
            state = chosen.get_state_dict(
                progress=False, check_hash=True, model_dir=str(folder), weights_only=True
            )
    except Exception as exc:  # URLError, timeouts, hash mismatch, unreadable file, ...
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:160]
        if had_file:
            raise _Unavailable(
                f"the cached weights {cached} could not be read ({detail}); it was left as it "
                "is: delete it and run again online to download a fresh copy"
            ) from None
        raise _Unavailable(
            f"download failed ({detail}); connect to the internet for the pretrained weights"
        ) from None
    model = models.get_model(name, weights=None)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[-1].strip()[:120]
        raise _Unavailable(
            f"the cached weights {cached} do not fit {name} ({first}); delete the file and run "
            "again online to download a fresh copy"
        ) from None
    top1 = chosen.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    accuracy = f", {top1:.1f} % top-1" if top1 is not None else ""
    return Pretrained(
        model=model.eval(),
        name=name,
        weights=full,
        transforms=chosen.transforms(),
        categories=tuple(chosen.meta["categories"]),
        source=f"torchvision {full} (ImageNet-1K{accuracy})",
        standin=False,
    )


def weights_table() -> list[dict]:
    """One row per classification weight torchvision knows, from ``weights.meta`` (no download):
    ``weights``, ``model``, ``acc@1`` and ``acc@5`` (ImageNet-1K, %), ``params_m`` (millions),
    ``gflops`` (torchvision's figure, which counts multiply-adds) and ``file_mb``; None where the
    metadata has no figure (feature-only weights have no accuracy)."""
    from torchvision import models

    rows = []
    for name in _classification_models():
        for w in models.get_model_weights(name):
            metrics = w.meta.get("_metrics", {}).get("ImageNet-1K", {})
            rows.append(
                {
                    "weights": f"{type(w).__name__}.{w.name}",
                    "model": name,
                    "acc@1": _figure(metrics.get("acc@1")),
                    "acc@5": _figure(metrics.get("acc@5")),
                    "params_m": w.meta["num_params"] / 1e6,
                    "gflops": _figure(w.meta.get("_ops")),
                    "file_mb": _figure(w.meta.get("_file_size")),
                }
            )
    return rows


def _figure(value) -> float | None:
    """A metadata figure, None where torchvision gives none (or NaN: weights without a head)."""
    return None if value is None or math.isnan(value) else float(value)


def find_classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """(name, layer) of ``model``'s classifier: its last ``nn.Linear`` in registration order
    (``fc`` of a ResNet, ``classifier.6`` of AlexNet, ``classifier.1`` of SmallCNN)."""
    linear = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise ValueError(
            f"found no nn.Linear classifier in {type(model).__name__} (its last layer is "
            f"{type(list(model.modules())[-1]).__name__}): give it a linear head first, or "
            "replace its last layer yourself"
        )
    return linear[-1]


def replace_classifier(model: nn.Module, num_classes: int) -> nn.Linear:
    """Put a new ``nn.Linear`` for ``num_classes`` labels in place of ``model``'s classifier
    (same input features, fresh weights); return the new layer."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a whole number >= 1; got {num_classes!r}")
    name, old = find_classifier(model)
    new = nn.Linear(old.in_features, num_classes).to(old.weight.device)
    parent_name, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent_name), attribute, new)
    return new
