"""The ReLU/tanh race of notebooks 06 and 08 (course_utils.activation_speed) and notebook 08's
ablation recipe, shipped long run and shipped network (course_utils.ablation)."""

import dataclasses
import json

import pytest
import torch

from course_utils import ablation, ablation_tables, activation_speed, datasets, train
from course_utils.activation_speed import Race, Run
from course_utils.loader import DeviceLoader


def separable(n=256, seed=0):
    """Two classes told apart by the mean of the red channel: (n, 3, 8, 8), (n,)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.1 * torch.randn(n, 3, 8, 8, generator=g)
    x[:, 0] += (2 * y - 1).float().view(-1, 1, 1) * 0.5
    return x, y


def tiny(activation):
    return activation_speed.four_layer_cnn(activation, channels=(4, 4, 4), side=8, num_classes=2)


def test_four_layer_cnn_shapes_and_errors():
    net = activation_speed.four_layer_cnn("tanh")
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert sum(isinstance(m, torch.nn.Tanh) for m in net.modules()) == 3
    assert sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in net.modules()) == 4
    with pytest.raises(ValueError, match="activation must be one of relu, tanh"):
        activation_speed.four_layer_cnn("sigmoid")
    with pytest.raises(ValueError, match="multiple of 8"):
        activation_speed.four_layer_cnn(side=28)


def test_paper_initialisation_draws_small_weights_and_zero_biases():
    torch.manual_seed(0)
    net = activation_speed.paper_initialisation(activation_speed.four_layer_cnn())
    weights = torch.cat([m.weight.flatten() for m in net.modules() if hasattr(m, "bias")])
    assert abs(weights.std().item() - 0.01) < 5e-4
    assert all(m.bias.abs().max() == 0 for m in net.modules() if hasattr(m, "bias"))


def test_steps_to_error_reaches_an_easy_target_and_reports_a_miss():
    x, y = separable()
    torch.manual_seed(0)
    run = activation_speed.steps_to_error(tiny("relu"), x, y, lr=0.1, batch_size=32, window=4)
    assert run.steps is not None and run.steps == len(run.errors) <= 200
    assert sum(run.errors[-4:]) / 4 <= 0.25 < sum(run.errors[:4]) / 4 or run.steps == 4
    torch.manual_seed(0)
    short = activation_speed.steps_to_error(
        tiny("relu"), x, y, lr=1e-6, batch_size=32, window=4, max_steps=6
    )
    assert short.steps is None and len(short.errors) == 6


def test_a_diverging_run_stops_without_reaching_the_target():
    x, y = separable()
    torch.manual_seed(0)
    run = activation_speed.steps_to_error(tiny("relu"), x * 1e4, y, lr=1e6, batch_size=32)
    assert run.steps is None and len(run.errors) < 1000


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"target": 1.5}, "target is a training error"),
        ({"window": 0}, "window"),
        ({"batch_size": 10_000}, "make no batch of 10000"),
    ],
)
def test_steps_to_error_rejects_bad_settings(options, message):
    x, y = separable()
    with pytest.raises(ValueError, match=message):
        activation_speed.steps_to_error(tiny("relu"), x, y, lr=0.1, **options)


def test_race_picks_each_activations_fastest_rate_and_measures_fresh_seeds():
    x, y = separable()
    result = activation_speed.race(
        tiny, x, y, lrs=(1e-5, 0.1), seeds=(1, 2, 3), batch_size=32, window=4, max_steps=120
    )
    for activation in ("relu", "tanh"):
        assert result.chosen_lr[activation] == 0.1  # 1e-5 cannot learn in 120 steps
        assert [r.seed for r in result.runs[activation]] == [1, 2, 3]
        assert {r.seed for r in result.grid[activation]} == {0}
    assert len(result.ratios()) == 3 and "over 3 seeds" in result.summary()
    with pytest.raises(ValueError, match="must all differ"):
        activation_speed.race(tiny, x, y, lrs=(0.1,), seeds=(0, 1), grid_seed=0)


def fake_race(relu, tanh, max_steps=100):
    def runs(steps):
        return [Run(0.1, seed, s, []) for seed, s in enumerate(steps, 1)]

    grid = {"relu": [Run(0.1, 0, 5, []), Run(0.3, 0, 9, [])], "tanh": [Run(0.1, 0, 5, [])]}
    return Race(
        0.25, max_steps, grid, {"relu": 0.1, "tanh": 0.1}, {"relu": runs(relu), "tanh": runs(tanh)}
    )


def test_race_ratios_verdicts_and_bounds():
    assert fake_race([10, 20, 40], [60, 60, 80]).ratios() == [6.0, 3.0, 2.0]
    assert fake_race([10, 20, 40], [60, 60, 80]).verdict() == "relu first with every seed"
    assert fake_race([60, 60, 80], [10, 20, 40]).verdict() == "tanh first with every seed"
    assert fake_race([10, 60, 40], [20, 20, 80]).verdict() == "no activation first with every seed"
    missed = fake_race([10, 20, 40], [None, 60, 80])
    assert missed.ratios()[0] == 10.0  # counted as max_steps: a lower bound
    summary = missed.summary()
    assert ">100" in summary and "bounds: some tanh runs" in summary
    assert "grid's edge" in summary.splitlines()[0]  # relu's 0.1 is the smallest rate it tried


def test_ablation_spread_and_noise_test():
    result = ablation.Ablation(
        (0, 1, 2), {"full network": [0.5, 0.6, 0.55], "a": [0.7, 0.8, 0.75], "b": [0.58, 0.7, 0.8]}
    )
    assert result.spread("full network") == (pytest.approx(0.55), 0.5, 0.6)
    assert result.beyond_noise("a") and not result.beyond_noise("b")
    # accuracy, training accuracy, training loss, test loss (per seed)
    seen = ablation.Ablation((0, 1), {"a": [0.5, 0.6]}, {"a": [0.9, 0.7]}, {"a": [0.2, 0.5]},
                             {"a": [1.0, 0.6]})  # fmt: skip
    assert seen.gaps("a") == pytest.approx([0.8, 0.1])  # test minus training loss, per seed
    seen.update(ablation.Ablation((0,), {"a": [0.3]}, {}, {"b": [0.1]}, {"b": [0.4]}))
    assert seen.accuracy["a"] == [0.3] and seen.gaps("b") == pytest.approx([0.3])
    assert "a" not in seen.train_accuracy and "a" not in seen.train_loss  # the old run's: dropped
    for broken in (
        result,
        seen,
        ablation.Ablation((0,), {"a": [0.5]}, {}, {"a": [0.1]}, {"a": []}),
    ):
        with pytest.raises(ValueError, match="variant 'a' needs a test and a training loss"):
            broken.gaps("a")
    for other in ({"b": [0.3]}, ablation.Ablation((1,), {"b": [0.3]})):
        with pytest.raises(ValueError, match=r"update\(\) takes the Ablation that ablate\(\)"):
            seen.update(other)


def test_ablate_checks_seeds_and_variants_before_training(tmp_path):
    data = datasets.load_dataset("cifar10", "test", root=tmp_path, download=False, quiet=True)
    recipe = ablation.Recipe(width=0.125)
    for seeds in ((0, 0), 3, (0.5,), ()):
        with pytest.raises(ValueError, match="seeds must be one or more different whole numbers"):
            ablation.ablate(recipe, data, data, epochs=1, n=64, seeds=seeds)
    with pytest.raises(ValueError, match="epochs must be a whole number of at least 1; got 0"):
        ablation.ablate(recipe, data, data, epochs=0, n=64)
    with pytest.raises(ValueError, match="variants must be a dict of name -> switches"):
        ablation.ablate(recipe, data, data, epochs=1, n=64, variants=[1, 2])
    with pytest.raises(ValueError, match="variant 3: its name must be a string"):
        ablation.ablate(recipe, data, data, epochs=1, n=64, variants={3: {}})
    with pytest.raises(ValueError, match="variant 'typo'"):
        ablation.ablate(recipe, data, data, epochs=1, n=64, variants={"typo": {"lnr": False}})
    with pytest.raises(
        ValueError,
        match=r"variant 'odd': augment must be True or False \(a Python bool\); got 'no'",
    ):
        ablation.ablate(recipe, data, data, epochs=1, n=64, variants={"odd": {"augment": "no"}})
    with pytest.raises(ValueError, match="variant 'v': its switches must be a dict"):
        ablation.ablate(recipe, data, data, epochs=1, n=64, variants={"v": None})
    for n in ("64", 2.5, True):
        with pytest.raises(ValueError, match="n must be a whole number"):
            ablation.ablate(recipe, data, data, epochs=1, n=n)
    with pytest.raises(
        ValueError, match=r"augment must be True or False \(a Python bool\); got None"
    ):
        recipe.train(data, 1, 32, augment=None)
    unaugmented = recipe.new(**ablation.VARIANTS["no augmentation"])  # the same net: augment is
    assert str(unaugmented) == str(recipe.new())  # the training's switch, not the network's
    with pytest.raises(ValueError, match="n must be a whole number"):
        recipe.train(data, 1, -10)


def test_ablate_trains_each_variant_per_seed(tmp_path, capsys, monkeypatch):
    train_set = datasets.load_dataset("cifar10", "train", root=tmp_path, download=False, quiet=True)
    test_set = datasets.load_dataset("cifar10", "test", root=tmp_path, download=False, quiet=True)
    test_set = dataclasses.replace(test_set, x=test_set.x[:64], y=test_set.y[:64])
    variants = {"full network": {}, "no LRN": {"lrn": False}, "no augmentation": {"augment": False}}
    loaders = []  # (images, crop_padding, flip) of every loader ablate makes

    def recording(x, y, **kwargs):
        loaders.append((len(x), kwargs.get("crop_padding", 0), kwargs.get("flip", False)))
        return DeviceLoader(x, y, **kwargs)

    monkeypatch.setattr(ablation, "DeviceLoader", recording)
    recipe = ablation.Recipe(width=0.125, batch=32)
    result = ablation.ablate(
        recipe, train_set, test_set, epochs=1, n=64, seeds=(0, 1), variants=variants
    )
    assert set(result.accuracy) == set(result.train_accuracy) == set(variants)
    assert set(result.train_loss) == set(result.test_loss) == set(variants)
    for table in (result.accuracy, result.train_accuracy):
        assert all(len(v) == 2 and all(0 <= a <= 1 for a in v) for v in table.values())
    for table in (result.train_loss, result.test_loss):  # cross-entropy of ten classes at the start
        assert all(len(v) == 2 and all(0 < loss < 10 for loss in v) for v in table.values())
    # evaluation on the test set and the 64 training images, unaugmented; then each training run
    # (two seeds per variant) crops and flips, except "no augmentation"
    assert loaders == [(64, 0, False)] * 2 + [(64, 4, True)] * 4 + [(64, 0, False)] * 2
    lines = capsys.readouterr().out.splitlines()  # one named line per variant as it finishes
    assert [line.split(":")[0] for line in lines] == [
        "variant 1/3 full network",
        "variant 2/3 no LRN",
        "variant 3/3 no augmentation",
    ]


def test_the_shipped_long_run_is_read_and_a_broken_one_is_refused(tmp_path):
    record = ablation.measured()
    assert set(record["variants"]) == set(ablation.VARIANTS) and len(record["seeds"]) >= 3
    for row in record["variants"].values():
        assert len(record["seeds"]) == len(row["accuracy"]) == len(row["train_accuracy"])
        assert len(record["seeds"]) == len(row["train_loss"]) == len(row["test_loss"])
        assert row["low"] <= row["mean"] <= row["high"]
        assert min(row["train_accuracy"]) <= row["train_mean"] <= max(row["train_accuracy"])
    no_train = json.loads(json.dumps(record))  # a run from before training loss was measured
    for row in no_train["variants"].values():
        del row["train_loss"]
    (tmp_path / "old.json").write_text(json.dumps(no_train))
    with pytest.raises(ValueError, match="run that script with --save"):
        ablation.measured(tmp_path / "old.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"variants": {"no LRN": {}}}))
    with pytest.raises(ValueError, match="not a result of benchmarks/alexnet_ablations.py"):
        ablation.measured(broken)
    with pytest.raises(ValueError, match="missing"):
        ablation.measured(tmp_path / "absent.json")


def test_the_shipped_network_is_verified_and_has_learned(tmp_path):
    model = ablation.trained_alexnet()
    # an empty root: the shapes10 stand-in the network was trained on, even where CIFAR-10 is cached
    test_set = datasets.load_dataset("cifar10", "test", root=tmp_path, download=False, quiet=True)
    assert test_set.standin
    with torch.no_grad():
        accuracy = (model(test_set.x[:500]).argmax(1) == test_set.y[:500]).float().mean().item()
    assert accuracy > 0.9
    assert model.features[0].weight.shape == (16, 3, 5, 5)
    copy = tmp_path / ablation.TRAINED
    copy.write_bytes(ablation._asset(ablation.TRAINED).read_bytes()[:-10] + b"0" * 10)
    (tmp_path / f"{ablation.TRAINED}.sha256").write_text(
        ablation._asset(f"{ablation.TRAINED}.sha256").read_text()
    )
    with pytest.raises(train.CheckpointError, match="does not match its sha256"):
        ablation.trained_alexnet(path=copy)
    (tmp_path / f"{ablation.TRAINED}.sha256").write_text("")
    with pytest.raises(train.CheckpointError, match="does not match its sha256"):
        ablation.trained_alexnet(path=copy)
    other = tmp_path / "other.pt"
    train.save_checkpoint(torch.nn.Linear(2, 2), other)
    with pytest.raises(train.CheckpointError, match="weights for another network"):
        ablation.trained_alexnet(path=other)


def test_retraining_the_shipped_network_never_replaces_a_file_unasked(tmp_path):
    existing = tmp_path / "net.pt"
    existing.write_bytes(b"keep")
    with pytest.raises(SystemExit):
        ablation.main(["--out", str(existing)])
    with pytest.raises(SystemExit):
        ablation.main(["--out", str(tmp_path)])
    assert existing.read_bytes() == b"keep"


def test_median_ratio_is_marked_as_a_bound_where_runs_missed():
    assert fake_race([10, 20, 40], [60, 60, 80]).median_ratio() == "3"
    assert fake_race([10, 20, 40], [None, None, None]).median_ratio() == ">= 5"
    assert fake_race([None, 20, 40], [10, 10, 10]).median_ratio() == "0.25"
    assert fake_race([None, None, 40], [10, 10, 10]).median_ratio() == "<= 0.1"
    assert fake_race([None] * 3, [None] * 3).median_ratio().startswith("unknown")
    # a bound below the median moves the median too: tanh's first seed missed (ratio >= 2)
    assert fake_race([50, 10, 20], [None, 60, 80]).median_ratio() == ">= 4"


def test_both_missed_is_unknown_and_a_divergence_is_said_and_ranked_last():
    lost = fake_race([None] * 3, [None] * 3)
    assert "unknown, neither reached the target" in lost.summary()
    assert lost.verdict() == "no activation first with every seed"
    # relu reached at exactly max_steps, tanh never: relu was first
    assert fake_race([100, 100, 100], [None] * 3).verdict() == "relu first with every seed"


def test_a_diverged_rate_is_never_chosen_over_one_that_trained(monkeypatch):
    def canned(model, x, y, *, lr, seed, **options):  # lr 1 blows up early, at a low error
        if lr == 1.0:
            return Run(lr, seed, None, [0.3, 0.3], diverged=True)
        return Run(lr, seed, None, [0.9, 0.6, 0.45, 0.4])

    monkeypatch.setattr(activation_speed, "steps_to_error", canned)
    x, y = separable()
    result = activation_speed.race(tiny, x, y, lrs=(1.0, 0.1), max_steps=4, window=2)
    assert result.chosen_lr == {"relu": 0.1, "tanh": 0.1}
    assert "diverged at 3" not in result.summary()  # the measured runs did not diverge
    result.runs["relu"][0] = Run(1.0, 1, None, [0.3, 0.3], diverged=True)
    assert "diverged at 3" in result.summary()


def test_race_refuses_repeated_seeds_and_bad_data():
    x, y = separable()
    with pytest.raises(ValueError, match="must all differ"):
        activation_speed.race(tiny, x, y, lrs=(0.1,), seeds=(1, 1, 2))
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite floating-point"):
        activation_speed.steps_to_error(tiny("relu"), bad, y, lr=0.1, batch_size=32)
    with pytest.raises(ValueError, match="labels run from 0 to 5 but the model has 2 outputs"):
        activation_speed.steps_to_error(tiny("relu"), x, y * 5, lr=0.1, batch_size=32)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        activation_speed.steps_to_error(tiny("relu"), x, y, lr=0.0)


def test_race_curves_draws_each_race_and_skips_runs_shorter_than_the_window():
    import matplotlib

    matplotlib.use("Agg")
    from course_utils import viz

    race = fake_race([10, 20, 40], [60, 60, 80])
    race.runs["relu"][0].errors = [0.5] * 20
    fig = viz.race_curves(race, titles=["one"])  # the other runs have no errors: skipped
    assert len(fig.axes[0].lines) == 2  # one run and the target line
    with pytest.raises(ValueError, match="one title each"):
        viz.race_curves([race, race], titles=["one"])


def test_the_ablation_tables_say_what_a_reader_needs():
    quoted = {"remove layer 7": "1.1 %, 16 M fewer"}
    columns = ablation_tables.parameter_table(0.25, quoted).splitlines()
    assert len(columns) == 1 + len(ablation.VARIANTS)
    fc7 = next(line for line in columns if line.startswith("remove layer 7"))
    assert "16,781,312" in fc7 and fc7.endswith("1.1 %, 16 M fewer")  # 4096 x 4096 + 4096
    result = ablation.Ablation(
        (0, 1, 2),
        {"full network": [0.15, 0.16, 0.17], "no LRN": [0.3, 0.31, 0.32], "no dropout": [0.2]},
        {"full network": [0.25, 0.26, 0.27], "no LRN": [0.3, 0.31, 0.35]},
        {"full network": [2.0, 2.0, 2.0], "no LRN": [1.5, 1.5, 1.5]},
        {"full network": [2.1, 2.2, 2.3], "no LRN": [1.5, 1.6, 1.5]},
    )
    table = ablation_tables.result_table(result, 0.25, quoted)
    rows = {line.split("  ")[0].strip(): line for line in table.splitlines()[1:4]}
    assert " yes " in rows["no LRN"] and " - " in rows["no dropout"]  # one seed: no verdict
    assert " +0.200 " in rows["full network"] and " +0.033 " in rows["no LRN"]  # test - training
    assert rows["no dropout"].split()[2:6] == ["20.0%", "-4.0%", "-", "-"]  # no losses measured
    assert "close to chance" in table  # the full network at 16 %
    assert "Ahead of every seed of the full network: no LRN, no dropout" in table
    long_run = ablation_tables.long_run_table(ablation.measured())
    record = ablation.measured()
    worse = [  # the benchmark's own verdicts agree with the table's, computed from the lists
        n
        for n, r in record["variants"].items()
        if r["beyond_noise"] and r["mean"] < record["variants"]["full network"]["mean"]
    ]
    ends = [line for line in long_run.splitlines() if line.startswith("accuracy beyond seed")]
    assert ends[0].endswith(f"worse: {', '.join(worse) or 'none'}")
    rows = long_run.splitlines()[1 : 2 + len(record["variants"])]
    assert len({len(line) for line in rows}) == 1  # the columns line up
    assert record["device"] in long_run.splitlines()[0]


def _long_run(seeds, **rows):
    """A record shaped like benchmarks/alexnet_ablations.py's: rows are lists of test accuracy,
    training accuracy, training loss and test loss. Its summaries are deliberately wrong: the
    table must compute them from the lists."""
    variants = {
        name.replace("_", " "): {
            "accuracy": test,
            "train_accuracy": seen,
            "train_loss": seen_loss,
            "test_loss": test_loss,
            "train_mean": 1.0,
            "mean": 1.0,
            "low": 1.0,
            "high": 1.0,
            "beyond_noise": True,
        }
        for name, (test, seen, seen_loss, test_loss) in rows.items()
    }
    return {"device": "CPU", "date": "2026-12-06", "data": "shapes10 stand-in", "width": 0.25,
            "epochs": 20, "images": 3000, "seconds": 60.0, "seeds": seeds, "variants": variants}  # fmt: skip


def test_the_long_run_table_reads_the_loss_gap_against_seed_noise():
    acc, fit = [0.90, 0.91, 0.92], [0.95, 0.97, 0.99]
    run = _long_run(
        [0, 1, 2],
        full_network=(acc, fit, [0.1, 0.1, 0.1], [0.3, 0.35, 0.4]),  # loss gaps 0.2 to 0.3
        no_dropout=([0.95, 0.96, 0.97], fit, [0.0, 0.0, 0.0], [0.4, 0.5, 0.6]),  # wider, better
        no_augmentation=(acc, fit, [0.2, 0.2, 0.2], [0.3, 0.3, 0.3]),  # 0.1 each: narrower
        no_LRN=([0.80, 0.81, 0.82], fit, [0.1, 0.1, 0.1], [0.25, 0.45, 0.3]),  # overlaps; worse
    )
    table = ablation_tables.long_run_table(run)
    assert table.splitlines()[-4:] == [
        "loss gap (test minus training cross-entropy) beyond seed noise, every seed's gap outside "
        "the full network's +0.200 to +0.300: wider: no dropout; narrower: no augmentation",
        "accuracy beyond seed noise, better than the full network: no dropout; worse: no LRN",
        "with 3 seeds each, two ranges miss each other by chance 10% of the time (2 of the 20 "
        "equally likely orders of 6 draws): over 3 variants, luck alone gives about 0.3 'beyond "
        "noise' per line",
        "The full network fits only 97.0% of its own training images: on this budget it is still "
        "learning them (underfitting), so what its remedies against overfitting would buy on a "
        "longer run, this table cannot say.",
    ]
    row = next(line for line in table.splitlines() if line.startswith("no dropout"))
    assert row.split()[-8:] == [  # mean, drop, verdict, training accuracy, mean gap and range
        "96.0%", "-5.0%", "yes", "97.0%", "+0.500", "(+0.400", "to", "+0.600)"
    ]  # fmt: skip
    one = _long_run(
        [0], full_network=([0.9], [0.995], [0.1], [0.2]), no_dropout=([0.9], [1.0], [0.0], [0.5])
    )
    lines = ablation_tables.long_run_table(one).splitlines()
    assert "needs two or more seeds" in lines[-2] and "worse:" in lines[-1]  # 99.5 %: no remark
    # (and no chance line: one seed has no range)


def test_the_ablation_tables_refuse_what_they_cannot_read():
    own = ablation.Ablation((0,), {"full network": [0.5], "my variant": [0.6]})
    assert "my variant" in ablation_tables.result_table(
        own, 0.25, None
    )  # no parameter columns for it
    with pytest.raises(ValueError, match="full network"):
        ablation_tables.result_table(ablation.Ablation((0,), {"no LRN": [0.5]}), 0.25, {})
    with pytest.raises(ValueError, match="not a result of benchmarks/alexnet_ablations.py"):
        ablation_tables.long_run_table({})
    for values in ([], [50, 60], [torch.tensor(0.5)]):
        with pytest.raises(ValueError, match="variant 'full network': accuracies must be a list"):
            ablation_tables.result_table(
                ablation.Ablation((0,), {"full network": values}), 0.25, {}
            )
    good = _long_run([0, 1], full_network=([0.9, 0.8], [0.95, 0.9], [0.1, 0.2], [0.3, 0.3]))
    for field, value in (
        ("train_accuracy", [0.9]),
        ("accuracy", ["0.9", 0.8]),
        ("test_loss", [-1.0, 0.3]),
        ("train_loss", [float("inf"), 0.3]),
    ):
        broken = json.loads(json.dumps(good))  # a line from an older script, or edited by hand
        broken["variants"]["full network"][field] = value
        with pytest.raises(ValueError, match="rerun that script with --save"):
            ablation_tables.long_run_table(broken)
