"""Blocks, freezing, norm statistics, few-shot draws, frozen features and the methods of
notebook 10 on the offline pair (a tiny budget: every code path, no figure)."""

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

from course_utils import datasets, features, finetune, models, pretrained, transfer
from course_utils.transfer_methods import ALL, METHODS, Budget, Experiment, Results

TINY = Budget(steps=2, batch_size=8, scratch_lrs=(1e-3, 3e-3), scratch_steps=(1, 2))


@pytest.fixture(scope="module")
def pair():
    return transfer.load_pair(None, eval_per_class=20)  # 200 test images: quick, and enough


def test_few_shot_draws_k_per_class_and_says_when_a_class_has_fewer():
    y = torch.tensor([0] * 5 + [1] * 3 + [2] * 4)
    index = features.few_shot(y, 3, seed=1)
    assert y[index].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and len(set(index.tolist())) == 9
    assert torch.equal(index, features.few_shot(y, 3, seed=1))
    assert torch.equal(index, features.few_shot(y, np.int64(3), seed=1))  # a NumPy k is a k
    assert not torch.equal(index, features.few_shot(y, 3, seed=2))
    with pytest.raises(
        ValueError, match="k=4 labels per class asked, but class 1 has only 3 .* use k <= 3"
    ):
        features.few_shot(y, 4)
    with pytest.raises(ValueError, match="whole number >= 1"):
        features.few_shot(y, 0)


def test_extract_equals_an_eval_forward_leaves_the_mode_and_caches(tmp_path, capsys):
    model = models.SmallCNN().train()
    x = torch.rand(10, 3, 32, 32)
    got = features.extract(
        model, x, ["features.6", "features.21"], batch_size=4, pool=2, cache_dir=tmp_path
    )
    assert all(m.training for m in model.modules()), "the caller's mode is kept, layer by layer"
    with torch.no_grad():
        maps = model.eval().features[:7](x)
    assert torch.allclose(
        got["features.6"], nn.functional.adaptive_avg_pool2d(maps, 2).flatten(1), atol=1e-5
    )
    assert got["features.21"].shape == (10, 128)
    (cached,) = tmp_path.glob("features-*.pt")
    again = features.extract(
        model, x, ["features.6", "features.21"], batch_size=4, pool=2, cache_dir=tmp_path
    )
    assert torch.equal(again["features.6"], got["features.6"])
    cached.write_bytes(b"not a tensor file")
    features.extract(
        model, x, ["features.6", "features.21"], batch_size=4, pool=2, cache_dir=tmp_path
    )
    assert "could not be read" in capsys.readouterr().out and cached.stat().st_size > 100
    with pytest.raises(ValueError, match="SmallCNN has no layer 'layer9'"):
        features.extract(model, x, ["layer9"])


@pytest.mark.parametrize(
    ("build", "names", "last_node"),
    [
        (
            models.SmallCNN,
            ["conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "head"],
            "features.21",
        ),
        (
            lambda: torchvision.models.resnet18(weights=None),
            ["stem", "layer1", "layer2", "layer3", "layer4", "head"],
            "flatten",
        ),
        (
            lambda: torchvision.models.alexnet(weights=None),
            ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "head"],
            "classifier.5",
        ),
    ],
)
def test_blocks_cover_every_parameter_once_and_name_the_heads_input(build, names, last_node):
    model = build()
    blocks = finetune.blocks(model)
    assert [name for name, _ in blocks] == names
    ids = [id(p) for _, block in blocks for p in block.parameters()]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert list(finetune.block_nodes(model).values())[-1] == last_node
    classifier = pretrained.find_classifier(model)[1]
    assert {id(p) for p in blocks[-1][1].parameters()} == {id(p) for p in classifier.parameters()}


def test_blocks_of_an_unknown_network_say_what_to_do():
    with pytest.raises(ValueError, match="list its blocks yourself"):
        finetune.blocks(nn.Sequential(nn.Linear(2, 2)))


def test_freeze_stops_gradients_and_statistics_until_unfrozen():
    model = models.SmallCNN().train()
    lower = finetune.blocks(model)[0][1]
    hooks = finetune.freeze(lower)
    before = lower[1].running_mean.clone()
    model(torch.rand(4, 3, 32, 32)).sum().backward()
    assert torch.equal(lower[1].running_mean, before) and all(
        p.grad is None for p in lower.parameters()
    )
    assert model.features[4].num_batches_tracked == 1, (
        "the blocks above still learn their statistics"
    )
    finetune.unfreeze([lower], hooks)
    model(torch.rand(4, 3, 32, 32))
    assert not torch.equal(lower[1].running_mean, before) and all(
        p.requires_grad for p in lower.parameters()
    )


def test_norm_statistics_are_re_estimated_exactly_and_norm_free_networks_are_named():
    model = models.SmallCNN()
    x = torch.rand(20, 3, 32, 32)
    finetune.estimate_norm_statistics(model, x, batch_size=20)
    with torch.no_grad():
        h = model.features[0](x)
    assert torch.allclose(model.features[1].running_mean, h.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(model.features[1].running_var, h.var((0, 2, 3)), rtol=1e-3)
    assert not model.training and model.features[1].momentum == 0.1
    with pytest.raises(ValueError, match="AlexNet has no normalisation layers"):
        finetune.norm_parameters(torchvision.models.alexnet(weights=None))


def test_statistics_shift_is_small_on_the_source_task_large_on_digits_and_changes_nothing(pair):
    model = pair.source.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    own = finetune.statistics_shift(model, transfer.source_task_pair().train.x[:200])
    digits = finetune.statistics_shift(model, transfer.digits_pair(pair.source).train.x[:200])
    assert len(own) == len(digits) == 6 and max(own) < 0.15 < sum(digits) / len(digits)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_every_method_runs_on_the_offline_pair(pair):
    experiment = Experiment(pair, budget=TINY, progress=False)
    assert experiment.labels_per_class((1, 2, 5, 10)) == [1, 2, 5, 10, ALL]
    results = experiment.curve(list(METHODS), [1], 1)
    assert [row["method"] for row in results.rows] == list(METHODS)
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in results.rows)
    assert results.mean("probe", 1) > 0.5, "the frozen source features know shapes"
    assert experiment.scratch_recipes[1]["lr"] in TINY.scratch_lrs
    assert experiment.accuracy("probe", 1, 0) == results.mean("probe", 1)  # measured once


def test_methods_leave_the_source_network_as_it_was(pair):
    before = {k: v.clone() for k, v in pair.source.model.state_dict().items()}
    experiment = Experiment(pair, budget=TINY, progress=False)
    for method in ("fine-tune", "norm-only", "progressive", "frozen lower"):
        experiment.accuracy(method, 1, 0)
    after = pair.source.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_bad_requests_are_named(pair):
    experiment = Experiment(pair, budget=TINY, progress=False)
    with pytest.raises(ValueError, match="unknown method 'finetune'"):
        experiment.accuracy("finetune", 1, 0)
    with pytest.raises(ValueError, match="k=500 labels per class asked, but class 0 has only 100"):
        experiment.accuracy("probe", 500, 0)
    for seed in (None, 1.5, True, "0"):  # at "all" too, where the seedless fits share one result
        with pytest.raises(ValueError, match="seed must be a whole number"):
            experiment.accuracy("probe", ALL, seed)
    with pytest.raises(ValueError, match="unknown method"):
        experiment.accuracy(["probe"], 1, 0)
    alexnet = pretrained.Pretrained(
        torchvision.models.alexnet(weights=None),
        "alexnet",
        "random",
        None,
        (),
        "random AlexNet",
        True,
    )
    small = datasets.ImageData(
        torch.rand(4, 3, 64, 64), torch.tensor([0, 0, 1, 1]), ("a", "b"), "four images", True
    )
    norm_free = Experiment(
        transfer.TransferPair(alexnet, small, small, small), budget=TINY, progress=False
    )
    with pytest.raises(ValueError, match="norm-only tuning has nothing to train"):
        norm_free.accuracy("norm-only", 1, 0)


def test_layer_probes_read_the_drawn_images_as_a_probe_on_the_whole_pool_would(pair):
    """Each "pretrained" row is the accuracy of the probe a direct computation gives (features of
    the whole pool, then the drawn rows), although layer_probes reads only the drawn images. It
    and curve name a bare k or a seed count that is not a whole number >= 1."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    experiment = Experiment(pair, budget=TINY, progress=False)
    results = experiment.layer_probes([1, 2], 2)
    nodes = finetune.block_nodes(pair.source.model)
    assert len(results.rows) == 2 * 2 * 2 * len(nodes)  # seeds, ks, pretrained/random, blocks
    node = nodes["conv4"]
    pool = features.extract(pair.source.model, pair.train.x, [node], pool=2)[node]
    test = features.extract(pair.source.model, pair.test.x, [node], pool=2)[node]
    for seed, k in ((0, 1), (1, 2)):
        index = experiment.draw(k, seed)
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        probe.fit(pool[index].numpy(), pair.train.y[index].numpy())
        expected = probe.score(test.numpy(), pair.test.y.numpy())
        (row,) = [
            r
            for r in results.rows
            if (r["method"], r["block"], r["seed"], r["k"]) == ("pretrained", "conv4", seed, k)
        ]
        assert row["accuracy"] == pytest.approx(expected, abs=1e-9)
    for measure in (
        experiment.layer_probes,
        lambda ks, seeds: experiment.curve(["probe"], ks, seeds),
    ):
        for ks, seeds in (([], 1), ([1], 0), ([1], 1.5), ([1], True)):
            with pytest.raises(ValueError, match="at least one k and a whole number of seeds"):
                measure(ks, seeds)
        for ks in (1, ALL, None):
            with pytest.raises(
                ValueError, match=r"ks is a list of labels per class, such as \[1, 5\]"
            ):
                measure(ks, 1)


def test_results_summarise_mean_spread_and_count():
    results = Results(
        [{"method": "m", "k": 1, "seed": s, "accuracy": a} for s, a in enumerate((0.5, 0.7))]
    )
    assert results.summary()["m", 1] == pytest.approx((0.6, 0.02**0.5, 2))  # the sample std
    assert "60.0 % ±" in results.table() and "(n=2)" in results.table()


def test_the_label_sets_of_both_pairs_are_compared_by_name():
    offline = transfer.shared_labels(datasets.SHAPES10_CLASSES, datasets.NEWSHAPES10_CLASSES)
    assert offline["identical"] == [] and ("disk", "half disk") in offline["contained"]
    online = transfer.shared_labels(
        torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"],
        torchvision.datasets.Flowers102.classes,
    )
    assert online["identical"] == ["artichoke"] and ("daisy", "oxeye daisy") in online["contained"]


def test_the_far_target_and_the_resized_pairs_keep_the_source_network_s_input(pair):
    far = transfer.digits_pair(pair.source)
    assert far.train.x.shape[1:] == (3, 32, 32) and far.train.y.bincount().tolist() == [100] * 10
    assert pair.flip and not far.flip, "a mirrored digit is another digit"
    assert (
        not set(far.train.y.tolist()) - set(range(10)) and len(far.val) > 0 and len(far.test) == 540
    )
    shrunk = transfer.resized(pair, 9, back_up=False)
    back = transfer.resized(pair, 9, back_up=True)
    assert (
        shrunk.test.x.shape[-1] == 9
        and back.test.x.shape[-1] == 32
        and "shrunk to 9x9" in back.test.source
    )
    own = transfer.source_task_pair()
    assert own.train.classes == datasets.SHAPES10_CLASSES and len(own.test) == 1000


def test_the_offline_target_has_a_validation_split_of_its_own():
    val = datasets.load_dataset("flowers102", "val", quiet=True)
    train = datasets.load_dataset("flowers102", "train", quiet=True)
    assert val.standin and len(val) == 1000 and not torch.equal(val.x[:10], train.x[:10])
    with pytest.raises(ValueError, match="mnist has no split 'val'"):
        datasets.load_dataset("mnist", "val")
    assert np.array_equal(
        datasets.load_dataset("flowers102", "test", quiet=True, per_class=3).y.bincount(), [3] * 10
    )
