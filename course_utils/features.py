"""What a frozen network computes, and few-labelled samples: shared by notebooks 09 and 10.

- :func:`few_shot` draws ``k`` labelled examples of every class (the "labels per class" axis of
  transfer learning), with a clear error when a class has fewer.
- :func:`extract` runs a network frozen (eval mode, no gradients, batch by batch) and returns the
  activations of the layers asked for, by the node names of torchvision's feature extractor
  (``torchvision.models.feature_extraction``), optionally average-pooled to a small grid. With a
  ``cache_dir`` the result is stored under a fingerprint of the weights, the layers and the
  images, so a rerun (or another notebook) computes it once.
"""

from __future__ import annotations

import hashlib
import numbers
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.env import read_in_fast_layout


def few_shot(y: torch.Tensor, k: int, *, seed: int = 0) -> torch.Tensor:
    """Indices (k * classes,) of ``k`` examples of every class in labels ``y`` (N,), drawn without
    replacement by ``seed``, grouped by class in increasing label order."""
    y = torch.as_tensor(y)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k (labels per class) must be a whole number >= 1; got {k!r}")
    k = int(k)
    classes, counts = torch.unique(y, return_counts=True)
    if (counts < k).any():
        short = int(counts.argmin())
        raise ValueError(
            f"k={k} labels per class asked, but class {int(classes[short])} has only "
            f"{int(counts[short])} examples in this split: use k <= {int(counts.min())}"
        )
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in classes:
        members = torch.nonzero(y == c).flatten()
        picks.append(members[torch.randperm(len(members), generator=g)[:k]])
    return torch.cat(picks)


def node_names(model: nn.Module) -> list[str]:
    """The layer names :func:`extract` accepts for ``model`` (torchvision's graph node names)."""
    from torchvision.models.feature_extraction import get_graph_node_names

    return get_graph_node_names(model)[1]


def _pooled(h: torch.Tensor, pool: int | None) -> torch.Tensor:
    """Activations (N, ...) as (N, D) float32: maps (N, C, H, W) larger than pool x pool are
    average-pooled to that grid first (smaller ones are kept as they are)."""
    if pool is not None and h.ndim == 4:
        h = F.adaptive_avg_pool2d(h, (min(pool, h.shape[-2]), min(pool, h.shape[-1])))
    return h.flatten(1).float()


def _fingerprint(model: nn.Module, x: torch.Tensor, nodes: Sequence[str], pool) -> str:
    """sha256 of the weights and buffers, the images and the request, as hex."""
    digest = hashlib.sha256(repr((type(model).__name__, list(nodes), pool)).encode())
    for name, tensor in [*model.state_dict().items(), ("x", x)]:
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def extract(
    model: nn.Module,
    x: torch.Tensor,
    nodes: Sequence[str],
    *,
    pool: int | None = None,
    batch_size: int = 256,
    device=None,
    cache_dir: Path | None = None,
) -> dict[str, torch.Tensor]:
    """Activations of ``model`` at each layer in ``nodes`` for images ``x`` (N, C, H, W), as
    {node: (N, D) float32 CPU tensor}, computed in eval mode without gradients.

    ``nodes``: names from :func:`node_names` (``"features.6"``, ``"layer3"``). ``pool``: average
    maps to pool x pool before flattening (None keeps every position). The model's mode and
    weights are left as they were. ``cache_dir``: reuse (or store) the result there.
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    nodes = list(nodes)
    if not nodes:
        raise ValueError("nodes is empty: name at least one layer (see features.node_names(model))")
    known = node_names(model)
    unknown = [n for n in nodes if n not in known]
    if unknown:
        raise ValueError(
            f"{type(model).__name__} has no layer {unknown[0]!r}; its layers are "
            f"{', '.join(known[:6])}, ... (features.node_names(model) lists all {len(known)})"
        )
    if x.ndim != 4 or len(x) == 0:
        raise ValueError(f"x must be images (N, C, H, W), N >= 1; got shape {tuple(x.shape)}")
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"features-{_fingerprint(model, x, nodes, pool)[:24]}.pt"
        cached = _read_cache(path)
        if cached is not None:
            return cached
    device = torch.device(device) if device is not None else next(model.parameters()).device
    extractor = create_feature_extractor(model, return_nodes=nodes).to(device)
    modes = {module: module.training for module in model.modules()}

    def read(layout) -> dict[str, torch.Tensor]:
        outputs: dict[str, list[torch.Tensor]] = {n: [] for n in nodes}
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                batch = extractor(x[start : start + batch_size].to(device, memory_format=layout))
                for n in nodes:
                    outputs[n].append(_pooled(batch[n], pool).cpu())
        return {n: torch.cat(parts) for n, parts in outputs.items()}

    try:
        extractor.eval()  # its layers are the model's own
        result, _ = read_in_fast_layout(read, device)
    finally:
        for module, training in modes.items():
            module.training = training
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        torch.save(result, partial)
        partial.replace(path)
    return result


def _read_cache(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached features at ``path``, or None when there are none or they cannot be read
    (then they are computed again and the file is written anew, after one line saying so)."""
    if not path.exists():
        return None
    try:
        cached = torch.load(path, weights_only=True)
        if isinstance(cached, dict) and all(isinstance(v, torch.Tensor) for v in cached.values()):
            return cached
        problem = "it does not hold a dictionary of tensors"
    except Exception as exc:  # torch.load raises many kinds on a damaged file
        problem = " ".join(f"{type(exc).__name__}: {exc}".split())[:120]
    print(f"⚠ the feature cache {path.name} could not be read ({problem}); computing it again")
    return None
