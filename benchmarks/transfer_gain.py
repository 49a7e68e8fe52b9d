"""Does the offline source network help a few-label target? Prints one JSON line.

Source: ``models.SmallCNN`` pretrained on shapes10 (``data/transfer_source.pt``). Target:
newshapes10 (``load_dataset("flowers102")`` offline), ten shapes the source never saw. For k
labelled images per class (k in 1, 2, 5, 10, 20), test accuracy on 1,000 held-out images of:

- ``scratch``: the same network from random weights;
- ``fine_tuned``: the source network with a new classifier, pretrained layers at a tenth of the
  new layer's learning rate;
- ``linear_probe``: the frozen source features with logistic regression (scikit-learn).

All trained for the same number of steps with the same augmentation, mean over ``--seeds``.
The stand-in pair is a fair transfer target when ``fine_tuned`` and ``linear_probe`` beat
``scratch`` at small k.
"""

import argparse
import contextlib
import io
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn

os.environ.setdefault("COURSE_OFFLINE", "1")

from course_utils import datasets, models, train, transfer  # noqa: E402
from course_utils.loader import DeviceLoader  # noqa: E402


def few_labels(data, k: int, seed: int):
    """k images of each class from ``data``, chosen by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    picks = [
        torch.nonzero(data.y == c).flatten()[
            torch.randperm(int((data.y == c).sum()), generator=g)[:k]
        ]
        for c in range(len(data.classes))
    ]
    index = torch.cat(picks)
    return data.x[index], data.y[index]


def train_target(model, x, y, *, steps: int, lr: float, pretrained: bool, seed: int) -> nn.Module:
    head = list(model.classifier.parameters())
    body = list(model.features.parameters())
    optimizer = torch.optim.AdamW(
        [{"params": body, "lr": lr / 10 if pretrained else lr}, {"params": head, "lr": lr}],
        weight_decay=5e-4,
    )
    batch = min(len(y), 64)
    loader = DeviceLoader(x, y, batch_size=batch, crop_padding=2, flip=True, seed=seed)
    epochs = max(1, round(steps / len(loader)))
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        train.fit(model, loader, epochs=epochs, optimizer=optimizer, progress=False)
    return model


def features(model, x):
    model.eval()
    with torch.no_grad():
        return model.features(x).flatten(1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression

    target = datasets.load_dataset("flowers102", "train", quiet=True)
    test = datasets.load_dataset("flowers102", "test", quiet=True)
    test_loader = DeviceLoader(test.x, test.y, batch_size=500, shuffle=False)
    source = transfer.source_network()
    test_features = features(source, test.x)
    start = time.perf_counter()
    rows = []
    for k in args.ks:
        scores = {"scratch": [], "fine_tuned": [], "linear_probe": []}
        for seed in range(args.seeds):
            x, y = few_labels(target, k, seed)
            torch.manual_seed(seed)
            scratch = train_target(
                models.SmallCNN(), x, y, steps=args.steps, lr=3e-3, pretrained=False, seed=seed
            )
            scores["scratch"].append(train.evaluate(scratch, test_loader)[1])
            tuned = transfer.source_network()
            torch.manual_seed(seed)
            tuned.classifier = nn.Sequential(nn.Flatten(), nn.Linear(128, 10))
            tuned = train_target(tuned, x, y, steps=args.steps, lr=3e-3, pretrained=True, seed=seed)
            scores["fine_tuned"].append(train.evaluate(tuned, test_loader)[1])
            probe = LogisticRegression(max_iter=2000).fit(features(source, x), y.numpy())
            scores["linear_probe"].append(float(probe.score(test_features, test.y.numpy())))
        rows.append(
            {"k_per_class": k, **{name: round(float(np.mean(v)), 4) for name, v in scores.items()}}
        )
    print(
        json.dumps(
            {
                "benchmark": "transfer_gain",
                "source": "SmallCNN pretrained on shapes10 (data/transfer_source.pt)",
                "target": target.source,
                "steps": args.steps,
                "seeds": args.seeds,
                "seconds": round(time.perf_counter() - start, 1),
                "results": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
