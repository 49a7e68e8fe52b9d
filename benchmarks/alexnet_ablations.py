"""Notebook 08's ablation table trained long enough to read against seed noise: every variant of
``course_utils.ablation.VARIANTS`` from scratch with three seeds, on the CIFAR-10 training set
(offline: the shapes10 stand-in), test accuracy per seed, their mean and range, and whether each
variant's range clears the full network's, and accuracy and loss on the training images themselves
(test minus training loss is the gap that overfitting opens). Prints one JSON line; ``--save`` also
writes it where notebook 08 reads it (``course_utils/assets/alexnet_ablations.json``).
"""

import argparse
import json
import os
import platform
import time

import torch

from course_utils import ablation, datasets


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--tiny", action="store_true", help="one epoch on 128 images, two variants")
    parser.add_argument("--save", help="also write the JSON line to this file")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_set = datasets.load_dataset("cifar10", "train", quiet=True)
    test_set = datasets.load_dataset("cifar10", "test", quiet=True)
    variants = ablation.VARIANTS
    if args.tiny:
        args.epochs, args.images, args.seeds = 1, 128, 2
        variants = {name: variants[name] for name in ("full network", "no augmentation")}
    start = time.perf_counter()
    result = ablation.ablate(
        ablation.Recipe(width=args.width, device=device),
        train_set,
        test_set,
        epochs=args.epochs,
        n=args.images,
        seeds=tuple(range(args.seeds)),
        variants=variants,
    )
    table = {}
    for name, values in result.accuracy.items():
        mean, low, high = result.spread(name)
        seen = result.train_accuracy[name]
        table[name] = {
            "accuracy": [round(v, 4) for v in values],
            "train_accuracy": [round(v, 4) for v in seen],
            "train_mean": round(sum(seen) / len(seen), 4),
            "test_loss": [round(v, 4) for v in result.test_loss[name]],
            "train_loss": [round(v, 4) for v in result.train_loss[name]],
            "mean": round(mean, 4),
            "low": round(low, 4),
            "high": round(high, 4),
            "beyond_noise": result.beyond_noise(name),
        }
    line = json.dumps(
        {
            "benchmark": "alexnet_ablations",
            "device": device_name(device),
            "data": "shapes10 stand-in" if train_set.standin else "CIFAR-10",
            "epochs": args.epochs,
            "images": min(args.images, len(train_set.y)),
            "width": args.width,
            "seeds": list(result.seeds),
            "variants": table,
            "seconds": round(time.perf_counter() - start, 1),
            "date": time.strftime("%Y-%m-%d"),
        }
    )
    print(line)
    if args.save:
        with open(args.save + ".partial", "w") as handle:
            handle.write(line + "\n")
        os.replace(args.save + ".partial", args.save)


if __name__ == "__main__":
    main()
