"""Training: ``fit`` / ``evaluate`` with progress bars, a :class:`History`, mixed precision by
device, and ``train_or_load`` checkpoints verified by sha256 and loaded with ``weights_only``.

Precision (DESIGN section 8): bf16 autocast on GPUs with compute capability >= 8.0, fp16 with a
gradient scaler on older GPUs, full fp32 on the CPU; ``COURSE_PRECISION=fp16`` (or ``fp32``)
overrides the GPU's choice (see :mod:`course_utils.env`).
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.env import precision_choice


@dataclass
class History:
    """Per-epoch records: ``epoch``, ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``seconds``."""

    records: list[dict] = field(default_factory=list)
    KEYS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds")

    def __getitem__(self, key: str) -> list:
        """One value per epoch (None for val_* without validation data)."""
        if key not in self.KEYS:
            raise KeyError(f"a History has no {key!r}; it records {', '.join(self.KEYS)}")
        return [r.get(key) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def last(self) -> dict:
        return self.records[-1] if self.records else {}


def precision(device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a gradient scaler is needed) for ``device``."""
    choice = precision_choice()
    if device.type != "cuda" or choice == "fp32":
        return None, False
    if choice == "fp16":
        return torch.float16, True
    major, _ = torch.cuda.get_device_capability(device)
    return (torch.bfloat16, False) if major >= 8 else (torch.float16, True)


def describe_precision(device: torch.device) -> str:
    """What :func:`precision` chooses for ``device``, in words, naming a ``COURSE_PRECISION``
    override: e.g. "fp16 with a gradient scaler (COURSE_PRECISION=fp16)"."""
    dtype, needs_scaler = precision(device)
    words = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    if needs_scaler:
        words += " with a gradient scaler"
    choice = precision_choice()
    return words + (f" (COURSE_PRECISION={choice})" if choice != "auto" else "")


def model_weights(model: nn.Module) -> torch.Tensor:
    """The model's first parameter (its device and dtype are the model's); ValueError for a
    model without any."""
    weights = next(model.parameters(), None)
    if weights is None:
        raise ValueError(
            f"the model ({type(model).__name__}) has no parameters, so there is nothing to "
            "train: give it at least one layer with weights (nn.Linear, nn.Conv2d, ...)"
        )
    return weights


def first_batch(data, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The first (x, y) of ``data`` (``what`` names it in messages); ValueError when there is
    none or it is not a pair of tensors, e.g. when one (x, y) pair is passed instead of batches."""
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) and t.ndim >= 1 for t in data)
        and len(data[0]) == len(data[1]) > 2
    ):
        raise ValueError(
            f"the {what} is one pair (x, y) of {len(data[0])} examples; training takes batches: "
            "pass DeviceLoader(x, y, batch_size=64) (from course_utils.loader)"
        )
    first = next(iter(data), None)
    if first is None:
        raise ValueError(f"the {what} yields no batches: is the dataset (or its slice) empty?")
    if not (
        isinstance(first, (tuple, list))
        and len(first) == 2
        and all(isinstance(t, torch.Tensor) for t in first)
    ):
        raise ValueError(
            f"each batch of the {what} must be a pair (x, y) of tensors; the first is a "
            f"{type(first).__name__}: pass a DeviceLoader or a DataLoader of (image, label) pairs"
        )
    return first[0], first[1]


def check_labels(data, classes: int, what: str) -> None:
    """Every label of ``data`` in 0 .. classes - 1, when they can be read without a pass over
    the data (a DeviceLoader holds them all, a list of batches too); ValueError otherwise."""
    labels = getattr(data, "y", None)
    if labels is None and isinstance(data, (tuple, list)):
        labels = torch.cat([torch.as_tensor(batch[1]).flatten() for batch in data])
    if isinstance(labels, torch.Tensor) and labels.numel():
        _labels_fit(labels, classes, f"the {what}'s labels")


def _labels_fit(labels: torch.Tensor, classes: int, whose: str) -> None:
    """ValueError, starting with ``whose``, unless every label lies in 0 .. classes - 1."""
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise ValueError(
            f"{whose} run from {low} to {high} but the model has {classes} outputs: build it "
            f"with num_classes={high + 1} (labels must lie in 0 .. {classes - 1})"
        )


def check_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Fail early with one clear line when the batches (x, y) do not fit the model: another
    device or dtype, an input shape it refuses, logits that are not (N, classes), labels that are
    not class indices below the number of outputs (on a GPU that would be a device-side assert).

    One image in eval mode: in train mode batch norm would refuse a single value per channel
    (a ResNet's last 1x1 maps on 32x32 images) and fold that image into its running statistics.
    Returns the number of outputs (classes).
    """
    weights = model_weights(model)
    device = weights.device
    if x.device != device or y.device != device:
        raise ValueError(
            f"the images are on {x.device} and the labels on {y.device}, but the model is on "
            f"{device}: give the DeviceLoader device={str(device)!r}, or move the model with "
            f"model.to({str(x.device)!r})"
        )
    if x.dtype != weights.dtype:
        scale = "" if x.dtype.is_floating_point else " / 255 (pixels of 0..255 become 0..1)"
        raise ValueError(
            f"the images are {x.dtype} but the model's weights are {weights.dtype}: convert the "
            f"images once, before training: x.to({weights.dtype}){scale}"
        )
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x[:1])
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"the model cannot take batches of shape {tuple(x.shape)}: {str(exc).splitlines()[0]}"
        ) from None
    finally:
        model.train(training)
    if logits.ndim != 2:
        raise ValueError(
            f"the model returns shape {tuple(logits.shape)} for one image; fit needs logits "
            "(N, classes): flatten before the last layer"
        )
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.ndim != 1:
        raise ValueError(
            f"labels must be class indices, integers of shape (N,); got {y.dtype} {tuple(y.shape)}"
        )
    classes = logits.shape[1]
    _labels_fit(y, classes, "labels")
    return classes


def evaluate(model: nn.Module, loader) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` over ``loader`` (ValueError if it is empty)."""
    device = model_weights(model).device
    dtype, _ = precision(device)
    model.eval()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    count = 0
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for x, y in loader:
            logits = model(x)
            total_loss += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            count += len(y)
    if count == 0:
        raise ValueError("evaluate got no batches: is the test data (or its slice) empty?")
    return total_loss.item() / count, correct.item() / count


def fit(
    model: nn.Module,
    train,
    *,
    epochs: int,
    lr: float = 1e-3,
    val=None,
    optimizer=None,
    weight_decay: float = 0.0,
    scheduler: str | None = None,
    channels_last: bool = True,
    compile: bool = False,
    max_grad_norm: float | None = None,
    progress: bool = True,
    history: History | None = None,
) -> History:
    """Train ``model`` on ``train`` (batches of (x, y)) for ``epochs``; evaluate on ``val`` each epoch.

    Uses AdamW (or ``optimizer``), cross-entropy, mixed precision by device, ``channels_last``
    (default: 1.2 to 1.8 times faster for these networks on CPUs, and on GPUs), optional ``torch.compile``, ``scheduler="onecycle"`` for a one-cycle learning rate
    (peak ``lr``) or ``"cosine"`` for a cosine decay to zero from each parameter group's own
    learning rate, and ``max_grad_norm`` to clip the gradients' global norm (steadies deep networks without
    normalisation layers at high learning rates).
    """
    if scheduler not in (None, "onecycle", "cosine"):
        raise ValueError(f'scheduler must be None, "onecycle" or "cosine"; got {scheduler!r}')
    first = first_batch(train, "training data")
    device = model_weights(model).device
    dtype, needs_scaler = precision(device)
    classes = _check_layout(model, first, channels_last)
    check_labels(train, classes, "training data")
    if val is not None:  # found now rather than after the first epoch's training
        first_val = first_batch(val, "validation data (val)")
        try:
            check_batch(model, *first_val)
        except ValueError as exc:
            raise ValueError(f"in the validation data (val): {exc}") from None
        check_labels(val, classes, "validation data (val)")
    step = torch.compile(model) if compile else model
    optimizer = optimizer or torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=weight_decay, fused=device.type == "cuda" or None
    )
    total_steps = epochs * len(train)
    sched = None
    if scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps)
    elif scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_scaler)
    history = history or History()
    for epoch in range(len(history) + 1, len(history) + epochs + 1):
        model.train()
        start = time.perf_counter()
        total_loss = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        count = 0
        bar = progress_bar(train, desc=f"epoch {epoch}", disable=not progress)
        for x, y in bar:
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = step(x)
                loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if max_grad_norm is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            if sched is not None:
                sched.step()
            total_loss += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            count += len(y)
        record = {
            "epoch": epoch,
            "train_loss": total_loss.item() / count,
            "train_acc": correct.item() / count,
        }
        if val is not None:
            record["val_loss"], record["val_acc"] = evaluate(model, val)
        record["seconds"] = time.perf_counter() - start
        history.records.append(record)
        if progress:
            shown = ", ".join(
                f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "seconds")
            )
            bar.write(f"epoch {epoch}: {shown} ({record['seconds']:.1f} s)")
    return history


def _check_layout(model: nn.Module, first: tuple, channels_last: bool) -> int:
    """:func:`check_batch` on the first batch, with ``model`` put in the channels_last layout
    (faster convolutions on CPUs and GPUs) when asked and it has 4-D weights and none larger. A
    model that fails there (a ``.view`` of a convolution's output needs the default layout) goes
    back to it and is checked again, so a real mistake is named as it would be without."""
    dims = {p.dim() for p in model.parameters()}
    if not channels_last or 4 not in dims or max(dims) > 4:
        return check_batch(model, *first)
    model.to(memory_format=torch.channels_last)
    try:
        return check_batch(model, *first)
    except ValueError:
        model.to(memory_format=torch.contiguous_format)
        return check_batch(model, *first)


def progress_bar(iterable, **options):
    """tqdm's text bar on standard output, redrawn in place and erased when done (``leave=False``):
    a saved notebook keeps the lines printed beside it, and no widget view, which a notebook
    reopened without its kernel could only show as "Error displaying widget"."""
    from tqdm.std import tqdm

    return tqdm(iterable, file=sys.stdout, leave=False, mininterval=0.5, **options)


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class CheckpointError(RuntimeError):
    """A checkpoint that does not match its hash or its model; the message names file and fix."""


def verified_state(path: Path, *, map_location="cpu", fix: str = "delete it to train again"):
    """What ``path`` holds (``torch.load`` with ``weights_only=True``) once it matches
    ``path.sha256``; otherwise :class:`CheckpointError` ending with ``fix``."""
    path = Path(path)
    recorded_file = path.with_suffix(path.suffix + ".sha256")
    if not path.is_file() or not recorded_file.is_file():
        missing = path if not path.is_file() else recorded_file
        raise CheckpointError(f"{missing} is missing (or not a file); {fix}")
    words = recorded_file.read_text(errors="replace").split()
    recorded = words[0].lower() if words else "(empty)"
    actual = sha256(path)
    if actual != recorded:
        raise CheckpointError(
            f"{path} does not match its sha256 ({actual[:12]}... != {recorded[:12]}...): "
            f"the file is corrupt or was replaced; {fix}"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise CheckpointError(
            f"{path} is not a PyTorch state dict ({exc.__class__.__name__}); {fix}"
        ) from None


def load_checkpoint(model: nn.Module, path: Path, *, fix: str | None = None) -> nn.Module:
    """Load ``path`` into ``model`` after checking ``path.sha256``; never deletes anything.
    ``fix`` ends the message of a :class:`CheckpointError` (default: delete it to train again)."""
    path = Path(path)
    state = verified_state(
        path,
        map_location=next(model.parameters()).device,
        fix=fix or f"delete it (and {path.name}.sha256) to train again",
    )
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise CheckpointError(
            f"{path} holds weights for another network (a different architecture: {first}); "
            + (fix or "delete it to train this model, or load it into the model it was saved from")
        ) from None
    return model


def train_or_load(
    model: nn.Module, path: Path, train_fn: Callable[[nn.Module], object]
) -> tuple[nn.Module, bool]:
    """Load ``model`` from ``path`` if a verified checkpoint exists, else run ``train_fn(model)`` and save.

    Returns (model, loaded). The checkpoint is a ``state_dict`` with a ``.sha256`` file beside it.
    """
    path = Path(path)
    if path.exists():
        return load_checkpoint(model, path), True
    train_fn(model)
    save_checkpoint(model, path)
    return model, False


def save_checkpoint(model: nn.Module, path: Path) -> None:
    """Write ``model``'s ``state_dict`` to ``path`` atomically, with ``path.sha256`` beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    path.with_suffix(path.suffix + ".sha256").write_text(f"{sha256(path)}  {path.name}\n")
