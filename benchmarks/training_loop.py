"""LeNet-5 on the MNIST stand-in (or MNIST when available): loop overhead, data-feed overhead and
accuracy within a time budget. Prints one JSON line.

- ``fit_vs_bare``: images/s of ``course_utils.train.fit`` divided by a bare PyTorch loop (same
  model, data, batch size, optimizer), goal >= 0.95: the median over six pairs of runs, one
  epoch of at least 10,000 images each (the stand-in repeated), so that it measures the cost of
  each step, not the milliseconds each call pays once (on 20 steps those alone made it
  0.83-0.93), and a pair's two runs see the same load on a shared machine;
- ``feed_share``: time spent producing batches with the device-resident loader (shuffle + crop +
  flip) as a share of the whole training step, batch 128, goal <= 5%;
- ``accuracy``: test accuracy after the notebook's default CPU recipe, and its training seconds
  (goal >= 97% within 15 s on a 2-core CPU);
- ``mnist_sized_images_per_s``: ``fit`` over 60,000 MNIST-sized images (1x32x32) held on the
  device, batch 128 as in notebook 06's GPU configuration (goal on a GPU >= 50,000), and at 512.

``--tiny`` runs every part once on little data, on the CPU (used by the test suite); its figures
mean nothing.
"""

import argparse
import contextlib
import io
import json
import statistics
import time

import torch
import torch.nn.functional as F

from course_utils import datasets, models, train
from course_utils.env import choose_device
from course_utils.loader import DeviceLoader

RECIPE = {"activation": "relu", "batch_size": 32, "lr": 5e-3, "epochs": 20, "crop_padding": 1}


def bare_loop(model, loader, epochs):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def mnist_sized_throughput(device, n=60_000, batch_size=128) -> float:
    """Images/s of ``fit`` (second epoch, after warm-up) on ``n`` random 1x32x32 images on ``device``."""
    x = torch.rand(n, 1, 32, 32, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    loader = DeviceLoader(x, y, batch_size=batch_size, crop_padding=1)
    model = models.LeNet5(activation="relu").to(device)
    history = train.fit(model, loader, epochs=2, lr=1e-3, progress=False)
    return n / history.records[-1]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true", help="every part once, small, on CPU")
    args = parser.parse_args()
    device = torch.device("cpu") if args.tiny else choose_device()
    recipe = {**RECIPE, "epochs": 1} if args.tiny else RECIPE
    pairs, least_images, mnist_sized_n = (1, 0, 1_000) if args.tiny else (6, 10_000, 60_000)
    tr = datasets.load_dataset("mnist", "train", quiet=True)
    te = datasets.load_dataset("mnist", "test", quiet=True)
    x_tr, x_te = datasets.pad_to(tr.x, 32).to(device), datasets.pad_to(te.x, 32).to(device)
    y_tr, y_te = tr.y.to(device), te.y.to(device)
    repeats = max(1, -(-least_images // len(y_tr)))
    loader = DeviceLoader(x_tr.repeat(repeats, 1, 1, 1), y_tr.repeat(repeats), batch_size=128)
    images = repeats * len(y_tr)
    torch.manual_seed(0)
    bare_loop(models.LeNet5().to(device), loader, 1)  # warm-up
    timings = {"bare": [], "fit": []}
    for _ in range(pairs):
        torch.manual_seed(0)
        start = time.perf_counter()
        bare_loop(models.LeNet5().to(device), loader, 1)
        timings["bare"].append(time.perf_counter() - start)
        torch.manual_seed(0)
        start = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            train.fit(models.LeNet5().to(device), loader, epochs=1, lr=1e-3)
        timings["fit"].append(time.perf_counter() - start)
    bare, fitted = min(timings["bare"]), min(timings["fit"])
    fit_vs_bare = statistics.median(
        b / f for b, f in zip(timings["bare"], timings["fit"], strict=True)
    )

    augmenting = DeviceLoader(x_tr, y_tr, batch_size=128, crop_padding=2, flip=True)
    start = time.perf_counter()
    passes = 1 if args.tiny else 5
    for _ in range(passes):
        for _batch in augmenting:
            pass
    feed = (time.perf_counter() - start) / (passes * len(augmenting))
    step = bare / len(loader)

    torch.manual_seed(0)
    model = models.LeNet5(activation=recipe["activation"]).to(device)
    start = time.perf_counter()
    history = train.fit(
        model,
        DeviceLoader(
            x_tr, y_tr, batch_size=recipe["batch_size"], crop_padding=recipe["crop_padding"]
        ),
        epochs=recipe["epochs"],
        lr=recipe["lr"],
        scheduler="onecycle",
        progress=False,
    )
    seconds = time.perf_counter() - start
    mnist_sized = mnist_sized_throughput(device, n=mnist_sized_n)
    _, accuracy = train.evaluate(model, DeviceLoader(x_te, y_te, batch_size=512, shuffle=False))
    print(
        json.dumps(
            {
                "benchmark": "training_loop",
                "device": str(device),
                "threads": torch.get_num_threads(),
                "data": tr.source,
                "bare_images_per_s": round(images / bare),
                "fit_images_per_s": round(images / fitted),
                "fit_vs_bare": round(fit_vs_bare, 3),
                "feed_ms_per_batch": round(feed * 1e3, 3),
                "step_ms_per_batch": round(step * 1e3, 3),
                "feed_share": round(feed / step, 4),
                "recipe": recipe,
                "tiny": args.tiny,
                "train_seconds": round(seconds, 1),
                "accuracy": round(accuracy, 4),
                "history_epochs": len(history),
                "mnist_sized_images_per_s": round(mnist_sized),
                "mnist_sized_images_per_s_batch512": round(
                    mnist_sized_throughput(device, n=mnist_sized_n, batch_size=512)
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
