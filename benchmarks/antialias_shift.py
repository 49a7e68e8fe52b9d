"""Blurred subsampling (Zhang 2019) against plain max pooling under small shifts: notebook 09's
shipped networks, three seeds of each, on centred shapes10 test images.

For each variant and seed: accuracy unshifted and after a one-pixel shift (circular and zero
filled), consistency (the share of images whose prediction a one-pixel shift leaves unchanged),
the relative change of the pooled features after one pixel and averaged over shifts of 1 to 7
pixels. Prints one JSON line with the means and sample standard deviations over seeds, and the
anti-aliased minus plain differences.
"""

import argparse
import json
import statistics
import time

import torch

from course_utils import datasets, invariance, invariance_nets


def measure(model, x, y) -> dict:
    with torch.no_grad():
        base = model(x).argmax(1)
        row = {"accuracy": (base == y).float().mean().item()}
        for mode in ("circular", "zeros"):
            moved = model(invariance.shift(x, 1, 0, mode=mode)).argmax(1)
            row[f"accuracy_1px_{mode}"] = (moved == y).float().mean().item()
            row[f"consistency_1px_{mode}"] = (moved == base).float().mean().item()
    run = invariance.curves(
        model, x, y, lambda im, s: invariance.shift(im, s, 0, mode="circular"), range(8), ["gap"]
    )
    row["feature_change_1px"] = run.change["gap"][1]
    row["feature_change_1_to_7px"] = statistics.mean(run.change["gap"][1:])
    return row


def summary(rows: list[dict]) -> dict:
    return {
        key: {
            "mean": round(statistics.mean(r[key] for r in rows), 4),
            "sd": round(statistics.stdev(r[key] for r in rows), 4) if len(rows) > 1 else 0.0,
        }
        for key in rows[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=len(invariance_nets.SEEDS))
    args = parser.parse_args()
    start = time.perf_counter()
    x, y = datasets.shapes10(args.images, seed=1, centre=0.15)
    seeds = invariance_nets.SEEDS[: args.seeds]
    table = {
        variant: summary([measure(invariance_nets.load(variant, s), x, y) for s in seeds])
        for variant in ("plain", "antialiased")
    }
    difference = {
        key: round(table["antialiased"][key]["mean"] - table["plain"][key]["mean"], 4)
        for key in table["plain"]
    }
    print(
        json.dumps(
            {
                "benchmark": "antialias_shift",
                "images": args.images,
                "seeds": len(seeds),
                "table": table,
                "antialiased_minus_plain": difference,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
