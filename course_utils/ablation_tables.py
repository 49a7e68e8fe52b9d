"""The tables notebook 08 prints for its ablations: the variants' parameters, a table trained in
the notebook (:func:`ablation.ablate`), and the long run shipped with the course
(:func:`ablation.measured`), each read against seed noise.
"""

from __future__ import annotations

import math
import statistics

from . import ablation
from .ablation import VARIANTS, Ablation, parameters


def parameter_table(width: float, quoted: dict[str, str]) -> str:
    """One line per variant: its parameters at ``width``, the weights it removes from the
    227-pixel network, and the ``quoted`` figures beside it."""
    quoted = quoted or {}
    full = parameters(width)[1]
    lines = [f"{'variant':26s} {'params (ours)':>13s} {'fewer (227)':>12s}  lecture (quoted)"]
    for name, options in VARIANTS.items():
        small, big = parameters(width, **options)  # augmentation changes no parameter
        lines.append(f"{name:26s} {small:>13,} {full - big:>12,}  {quoted.get(name, '')}")
    return "\n".join(lines)


def result_table(result: Ablation, width: float, quoted: dict[str, str]) -> str:
    """The trained table: each variant's accuracy per seed, its drop from the full network,
    whether it lies beyond seed noise, its test-minus-training loss gap (when measured), its
    parameters and the ``quoted`` figures; then what a reader must know to read it (the full network's range,
    a network near chance, variants ahead of every seed of the full network)."""
    if "full network" not in result.accuracy:
        raise ValueError(
            "the table reads every variant against the full network: train a 'full network' "
            "variant too (ablation.VARIANTS has it)"
        )
    for name, values in result.accuracy.items():
        ablation.check_accuracies(name, values)
    quoted = quoted or {}
    full_acc, full_low, full_high = result.spread("full network")
    full_big = parameters(width)[1]
    lines = [
        f"{'variant':26s} {'test acc (seeds)':>22s} {'drop':>7s} {'beyond noise':>12s} "
        f"{'loss gap':>8s} {'params (ours)':>13s} {'fewer (227)':>12s}  lecture (quoted)"
    ]
    for name in result.accuracy:
        acc, _, _ = result.spread(name)
        if name in VARIANTS:
            small, big = parameters(width, **VARIANTS[name])
            sizes = f"{small:>13,} {full_big - big:>12,}"
        else:  # a variant of the reader's own: its switches are not known here
            sizes = f"{'-':>13s} {'-':>12s}"
        seeds = " ".join(f"{a:.1%}" for a in result.accuracy[name])
        one_seed = len(result.accuracy[name]) == 1  # one draw against a range of three: 50 % alarms
        noise = (
            "-"
            if name == "full network" or one_seed
            else "yes"
            if result.beyond_noise(name)
            else "no"
        )
        measured = name in (result.test_loss or {})
        gap = f"{statistics.mean(result.gaps(name)):+8.3f}" if measured else "-"
        lines.append(
            f"{name:26s} {seeds:>22s} {full_acc - acc:+7.1%} {noise:>12s} {gap:>8s} {sizes}  "
            f"{quoted.get(name, '')}"
        )
    lines.append(
        f"\nfull network over {len(result.accuracy['full network'])} seeds: {full_low:.1%} to "
        f"{full_high:.1%}; 'beyond noise': the variant's seeds all lie outside that range ('-' for "
        "one seed: with no real difference, one draw lies outside a range of three half the time); "
        "'loss gap': mean test loss minus training loss (cross-entropy), the mark of overfitting"
    )
    if full_acc < 2 * 0.1:  # ten classes: chance is 10 %
        lines.append(
            f"The full network reached only {full_acc:.0%} on this budget, close to chance (10 %): "
            "it has barely started to learn, so the drops above say which variant starts fastest, "
            "not what its layers are worth."
        )
    ahead = [name for name in result.accuracy if result.spread(name)[1] > full_high]
    if ahead:
        lines.append(
            f"Ahead of every seed of the full network: {', '.join(ahead)}. On a budget this short, "
            "fewer weights to fit, no dropout (which, the paper says, roughly doubles the iterations "
            "needed) or unaugmented images can mean faster early learning."
        )
    return "\n".join(lines)


def long_run_table(run: dict) -> str:
    """The long run of :func:`ablation.measured`: where and how it was measured, each variant's
    test accuracy per seed, mean and drop, its training accuracy and its test-minus-training loss
    gap; then which variants lie beyond seed noise in which direction, in gap and in accuracy,
    and whether the full network still underfits its training images. Means, ranges and verdicts
    are computed from the per-seed lists."""
    if not ablation.is_long_run(run):
        raise ValueError(
            "not a result of benchmarks/alexnet_ablations.py (a field is missing, or a list does "
            "not have one number per seed): read it with ablation.measured(), or "
            "rerun that script with --save"
        )
    variants = run["variants"]
    result = ablation.Ablation(
        tuple(run["seeds"]),
        *({name: row[key] for name, row in variants.items()}
          for key in ("accuracy", "train_accuracy", "train_loss", "test_loss")),
    )  # fmt: skip
    lines = [
        f"benchmarks/alexnet_ablations.py on {run['device']}, {run['date']}: {run['data']}, "
        f"width {run['width']}, {run['epochs']} epochs on {run['images']:,} images, "
        f"seeds {run['seeds']} ({run['seconds'] / 60:.0f} min)",
        f"{'variant':26s} {'test acc per seed':>24s} {'mean':>7s} {'drop':>7s} {'beyond noise':>12s} "
        f"{'train':>7s} {'loss gap (range over seeds)':>30s}",
    ]
    reference = result.spread("full network")[0]
    better, worse, wider, narrower = [], [], [], []
    full_gap = result.gaps("full network")
    for name in variants:
        mean = result.spread(name)[0]
        seeds = " ".join(f"{a:.1%}" for a in result.accuracy[name])
        gaps = result.gaps(name)
        clear = name != "full network" and result.beyond_noise(name)
        if clear:
            (better if mean > reference else worse).append(name)
        side = ablation.range_side(gaps, full_gap) if name != "full network" else 0
        if side:
            (wider if side > 0 else narrower).append(name)
        noise = "-" if name == "full network" else "yes" if clear else "no"
        spread = f"{statistics.mean(gaps):+.3f} ({min(gaps):+.3f} to {max(gaps):+.3f})"
        fitted = statistics.mean(result.train_accuracy[name])
        lines.append(
            f"{name:26s} {seeds:>24s} {mean:7.1%} {reference - mean:+7.1%} "
            f"{noise:>12s} {fitted:7.1%} {spread:>30s}"
        )
    if len(full_gap) < 2:
        verdict = "needs two or more seeds (one seed's gap says nothing about seed noise)"
    else:
        verdict = (
            f"every seed's gap outside the full network's {min(full_gap):+.3f} to "
            f"{max(full_gap):+.3f}: wider: {', '.join(wider) or 'none'}; "
            f"narrower: {', '.join(narrower) or 'none'}"
        )
    lines.append(f"\nloss gap (test minus training cross-entropy) beyond seed noise, {verdict}")
    lines.append(
        f"accuracy beyond seed noise, better than the full network: {', '.join(better) or 'none'}; "
        f"worse: {', '.join(worse) or 'none'}"
    )
    runs, compared = len(full_gap), len(variants) - 1
    if runs > 1:  # 2 of the C(2n, n) equally likely orders of two groups of n draws
        orders = math.comb(2 * runs, runs)
        lines.append(
            f"with {runs} seeds each, two ranges miss each other by chance {2 / orders:.0%} of the "
            f"time (2 of the {orders} equally likely orders of {2 * runs} draws): over {compared} "
            f"variants, luck alone gives about {2 / orders * compared:.1f} 'beyond noise' per line"
        )
    fitted = statistics.mean(result.train_accuracy["full network"])
    if fitted < 0.99:
        lines.append(
            f"The full network fits only {fitted:.1%} of its own training images: on this budget "
            "it is still learning them (underfitting), so what its remedies against overfitting "
            "would buy on a longer run, this table cannot say."
        )
    return "\n".join(lines)
