"""How much does the offline source network buy a few-label target, against honest controls?
Prints one JSON line.

Source: ``models.SmallCNN`` pretrained on shapes10 (the package's ``assets/transfer_source.pt``).
Target: newshapes10, ten shapes the source never saw (1,000 labelled images to draw from, 1,000
to choose the scratch baseline's recipe on, 1,000 to test on). For k labelled images per class,
test accuracy of every method of ``course_utils.transfer_methods`` (fine-tuning variants,
norm-only tuning, frozen-feature probes) and of the controls: scratch (learning rate and steps
chosen per k on the validation set), a linear probe on random weights, logistic regression on
the pixels; mean and standard deviation over ``--seeds`` draws and initialisations. The same code
and, by default, the same budget per run as notebook 10 on a CPU, at more values of k (the
notebook takes 1, 5 and all); ``--steps 60 --scratch-steps 100 200`` is the longer budget.
``--far`` adds the digits target (transfer's worst case). The goal: at 5 labels per class the best transfer method beats both
the tuned scratch baseline and the random-weights probe by at least 25 points.
"""

import argparse
import json
import os
import time

os.environ.setdefault("COURSE_OFFLINE", "1")

import torch  # noqa: E402

from course_utils import transfer  # noqa: E402
from course_utils.env import threads  # noqa: E402
from course_utils.transfer_methods import ALL, METHODS, Budget, Experiment  # noqa: E402

TRANSFER = [m for m in METHODS if m not in ("scratch", "random probe", "pixels")]


def k_value(text: str):
    return ALL if text == ALL else int(text)


def run(pair, budget, methods, ks, seeds) -> dict:
    experiment = Experiment(pair, budget=budget, progress=False)
    recipes = experiment.tune_scratch(ks) if "scratch" in methods else {}
    results = experiment.curve(methods, ks, seeds)
    table = {
        f"{method} @ {k}": {"mean": round(mean, 4), "std": round(std, 4), "n": n}
        for (method, k), (mean, std, n) in results.summary().items()
    }
    return {
        "target": pair.train.source,
        "scratch_recipes": {str(k): r for k, r in recipes.items()},
        "table": table,
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ks", type=k_value, nargs="+", default=[1, 2, 5, 10, ALL])
    parser.add_argument("--steps", type=int, default=Budget.steps)
    parser.add_argument("--batch-size", type=int, default=Budget.batch_size)
    parser.add_argument("--scratch-lrs", type=float, nargs="+", default=list(Budget.scratch_lrs))
    parser.add_argument("--scratch-steps", type=int, nargs="+", default=list(Budget.scratch_steps))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--far", action="store_true", help="also the digits target")
    parser.add_argument(
        "--eval-per-class",
        type=int,
        default=None,
        help="validate and test on the first N images of each class only, and with --far draw the digits "
        "from the first N of each class too (a quick check; without it, --far takes 100 of each class)",
    )
    args = parser.parse_args()
    torch.set_num_threads(threads())  # COURSE_THREADS, else every core
    budget = Budget(
        steps=args.steps,
        batch_size=args.batch_size,
        scratch_lrs=tuple(args.scratch_lrs),
        scratch_steps=tuple(args.scratch_steps),
    )
    start = time.perf_counter()
    pair = transfer.load_pair(None, eval_per_class=args.eval_per_class)
    main_run = run(pair, budget, args.methods, args.ks, args.seeds)
    figures = {
        "benchmark": "transfer_gain",
        "source": pair.source.source,
        "target": main_run["target"],
        "budget": budget.__dict__,
        "test_images": len(pair.test),
        "seeds": args.seeds,
        "threads": torch.get_num_threads(),
        "scratch_recipes": main_run["scratch_recipes"],
        "table": main_run["table"],
    }
    summary = main_run["results"].summary()
    for k in args.ks:
        present = [m for m in TRANSFER if (m, k) in summary]
        if present and ("scratch", k) in summary and ("random probe", k) in summary:
            best = max(present, key=lambda m: summary[m, k][0])
            figures[f"gain_at_{k}"] = {
                "best_transfer": best,
                "over_scratch": round(summary[best, k][0] - summary["scratch", k][0], 4),
                "over_random_probe": round(summary[best, k][0] - summary["random probe", k][0], 4),
            }
    if args.far:
        far_methods = [
            m
            for m in (
                "scratch",
                "fine-tune",
                "fine-tune, one lr",
                "head only",
                "norm-only",
                "probe",
                "pixels",
            )
            if m in args.methods
        ]
        sized = {"per_class": args.eval_per_class} if args.eval_per_class else {}
        far = run(
            transfer.digits_pair(pair.source, **sized), budget, far_methods, args.ks, args.seeds
        )
        figures["far_target"] = {
            "target": far["target"],
            "scratch_recipes": far["scratch_recipes"],
            "table": far["table"],
        }
    figures["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
