"""AlexNet (paper and CIFAR-sized), the two-tower split, DDP under torchrun, the throughput benchmark."""

import copy
import functools
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from course_utils import distributed, models, parallel, throughput


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_paper_alexnet_sizes_and_parameter_counts():
    model = models.AlexNet()
    assert count(model) == 60_965_224
    assert count(models.AlexNet(grouped=False)) == 62_378_344
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride, c.groups) for c in convs] == [
        (96, (11, 11), (4, 4), 1),
        (256, (5, 5), (1, 1), 2),
        (384, (3, 3), (1, 1), 1),
        (384, (3, 3), (1, 1), 2),
        (256, (3, 3), (1, 1), 2),
    ]
    lrn = models.paper_lrn()
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 5e-4, 0.75, 2.0)
    lrns = [m for m in model.features if isinstance(m, models.LRN)]
    assert [(m.size, m.alpha, m.beta, m.k, m.groups) for m in lrns] == [(5, 1e-4, 0.75, 2.0, 2)] * 2
    assert models.AlexNet(grouped=False).features[2].groups == 1
    assert [m.p for m in model.classifier if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 227, 227)).shape == (1, 1000)


def test_wrong_input_size_names_the_size_needed():
    with pytest.raises(
        ValueError, match=r"expects input \(N, 3, 227, 227\); got \(1, 3, 224, 224\).*227x227"
    ):
        models.AlexNet()(torch.zeros(1, 3, 224, 224))
    with pytest.raises(
        ValueError,
        match=r"got \(3, 227, 227\) \(one image\? add the batch dimension: x.unsqueeze\(0\)\)$",
    ):
        models.AlexNet()(torch.zeros(3, 227, 227))
    with pytest.raises(ValueError, match="input_size must be 227"):
        models.AlexNet(input_size=64)
    with pytest.raises(ValueError, match="remove may name"):
        models.AlexNet(remove=("conv1",))


@pytest.mark.parametrize(
    "remove, fewer",
    [(("fc7",), 16_781_312), (("fc6", "fc7"), 49_414_144), (("conv3", "conv4"), 1_696_512)],
)
def test_ablations_remove_layers_and_reconnect(remove, fewer):
    with torch.device("meta"):
        assert count(models.AlexNet()) - count(models.AlexNet(remove=remove)) == fewer
    small = models.AlexNet(input_size=32, num_classes=10, width=0.25, remove=remove)
    assert small(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_switches_change_the_layers():
    model = models.AlexNet(
        input_size=32,
        num_classes=10,
        lrn=False,
        overlapping_pool=False,
        dropout=0.0,
        activation="tanh",
    )
    kinds = [type(m) for m in model.modules()]
    assert models.LRN not in kinds and nn.Dropout not in kinds and nn.ReLU not in kinds
    assert all(m.kernel_size == 2 for m in model.modules() if isinstance(m, nn.MaxPool2d))


@pytest.mark.parametrize("size", [32, 227])
def test_two_towers_compute_the_grouped_network(size, capsys):
    model = models.AlexNet(
        input_size=size, num_classes=10, width=0.5 if size == 227 else 1.0
    ).eval()
    towers = parallel.TwoTowerAlexNet(model).eval()
    if torch.cuda.device_count() < 2:
        assert "asked for 2 GPUs and found" in capsys.readouterr().out
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(towers(x).cpu(), model(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="grouped=True"):
        parallel.TwoTowerAlexNet(models.AlexNet(input_size=32, grouped=False))


def torchrun(tmp_path, *args, timeout=120):
    # the fault handler prints a rank's Python stack if it dies of a signal; torchrun's log
    # folder goes in tmp_path (TMPDIR), not in /tmp for good
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1", "TMPDIR": str(tmp_path)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    return subprocess.run(
        [*command, "-m", "course_utils.distributed", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def ranks_output(run: subprocess.CompletedProcess) -> str:
    """What the ranks printed: stdout, and stderr before torchrun's own failure report."""
    stderr = run.stderr.split('Traceback (most recent call last):\n  File "<frozen runpy>"')[0]
    return f"stdout:\n{run.stdout[-1500:]}\nstderr:\n{stderr[-3000:]}"


def test_ddp_trains_with_two_cpu_processes(tmp_path):
    """The script's default run (2 epochs of 2,000 images) learns: well above chance (10 %)."""
    run = torchrun(tmp_path, "--summary", str(tmp_path / "summary.json"))
    assert run.returncode == 0, ranks_output(run)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["images"] == 2000 and summary["epochs"] == 2
    assert "2 processes, backend gloo" in run.stdout and "epoch 2:" in run.stdout
    assert summary["test_accuracy"] > 0.15, summary


def test_ddp_gradients_equal_the_whole_batch_gradient(tmp_path):
    run = torchrun(tmp_path, "--check-gradients", str(tmp_path / "grads.pt"))
    assert run.returncode == 0, ranks_output(run)
    assert list(tmp_path.glob("torchelastic_*")), "torchrun's log folder went elsewhere"
    saved = torch.load(tmp_path / "grads.pt", weights_only=True)
    single = distributed.small_alexnet(dropout=0.0)
    single.load_state_dict(saved["initial"])
    F.cross_entropy(single(saved["x"]), saved["y"]).backward()
    for name, p in single.named_parameters():
        torch.testing.assert_close(saved["grads"][name], p.grad, atol=1e-6, rtol=1e-4)
    # and a single shard's gradient is not the whole batch's: the all-reduce mattered
    shard = distributed.small_alexnet(dropout=0.0)
    shard.load_state_dict(saved["initial"])
    F.cross_entropy(shard(saved["x"][:8]), saved["y"][:8]).backward()
    assert not torch.allclose(
        shard.features[0].weight.grad, saved["grads"]["features.0.weight"], atol=1e-6
    )


def test_running_the_ddp_script_without_torchrun_says_how(monkeypatch):
    for name in distributed.TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    run = subprocess.run(
        [sys.executable, "-m", "course_utils.distributed"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "must be started by torchrun" in run.stderr and "--nproc-per-node=2" in run.stderr


def test_alexnet_throughput_benchmark_runs_tiny(root):
    run = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "alexnet_throughput.py"), "--tiny"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert [r["model"] for r in figures["results"]] == ["cifar_alexnet", "alexnet_227"]
    assert [r["fast_convs"] for r in figures["results"]] == [False, True]
    early = [line for line in run.stderr.splitlines() if line.startswith("model: ")]
    assert [json.loads(line.removeprefix("model: ")) for line in early] == figures["results"]
    for result in figures["results"]:
        assert result["synthetic_images_per_s"] > 0 and result["pipeline_images_per_s"] > 0
        assert (
            result["train_gflop_per_image"] > 0 and result["mfu"] is None
        )  # no peak known for a CPU


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", 835.0),
        ("NVIDIA H200", 989.4),
        ("NVIDIA H200 NVL", 835.0),
        ("NVIDIA GH200 480GB", 989.4),
        ("Tesla T4", 65.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA L40", 181.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA GeForce RTX 3060", None),
    ],
)
def test_the_peak_table_picks_the_most_specific_gpu_name(monkeypatch, name, peak):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: name)
    assert throughput.peak_tflops(torch.device("cuda")) == peak
    assert throughput.peak_tflops(torch.device("cpu")) is None
    assert throughput.peak_tflops("cpu") is None  # a device name is read as a device


def test_training_flops_count_each_gradient_of_a_grouped_convolution_once():
    side = 8
    convs = [nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 8, 3, padding=1, groups=2)]
    net = lambda: nn.Sequential(*convs, nn.Flatten(), nn.Linear(8 * side * side, 10))  # noqa: E731
    macs = [side * side * 6 * 3 * 9, side * side * 8 * 3 * 9, 8 * side * side * 10]
    # the input needs no gradient, so conv1 runs twice (forward, weight gradient); the
    # grouped conv2 and the linear layer run three times (forward, input and weight gradients)
    expected = 2 * (2 * macs[0] + 3 * macs[1] + 3 * macs[2])
    assert throughput.train_flops_per_image(net, side) == expected
    conv1 = 2 * 55 * 55 * 96 * 11 * 11 * 3  # the one layer whose input gradient is not needed
    for grouped in (True, False):
        alexnet = functools.partial(models.AlexNet, num_classes=1000, grouped=grouped)
        without_lrn = models.AlexNet(num_classes=1000, grouped=grouped, lrn=False)
        with FlopCounterMode(display=False) as forward:
            without_lrn(torch.randn(1, 3, 227, 227))
        train = throughput.train_flops_per_image(alexnet, 227)
        assert train == 3 * forward.get_total_flops() - conv1  # LRN's matrix product left out
        assert round(train / 1e9, 2) == (4.14 if grouped else 6.6)


def test_alexnet_227_variants_benchmark_profiles_and_checks_each_rewrite(root):
    script = str(root / "benchmarks" / "alexnet_227_variants.py")
    run = subprocess.run(
        [sys.executable, script, "--tiny"], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    replaced = {v["variant"]: v["layers_replaced"] for v in figures["variants"]}
    assert replaced == {
        "paper": 0,
        "conv1_c4": 1,
        "conv1_c8": 1,
        "conv1_s2d": 1,
        "library_lrn": 2,
        "split_groups": 3,
        "dense_groups": 3,
        "conv1_s2d+dense_groups": 4,
    }
    for variant in figures["variants"]:
        assert variant["max_relative_difference"] < 1e-4 and variant["images_per_s"] > 0
    measured_so_far = [  # the lines a run killed at the device's time limit still leaves
        json.loads(line.split(": ", 1)[1])
        for line in run.stderr.splitlines()
        if line.startswith(("variant: ", "profile: "))
    ]
    assert measured_so_far == [figures["variants"][0], figures["profile"], *figures["variants"][1:]]
    ops = dict(figures["profile"]["top_ops"])
    assert any("convolution" in op for op in ops) and 0.5 < sum(ops.values()) <= 1.0
    budget = subprocess.run(
        [sys.executable, script, "--tiny", "--no-profile", "--variants", "paper,conv1_s2d"]
        + ["--budget-s", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert budget.returncode == 0, budget.stderr[-2000:]
    cut = json.loads(budget.stdout.strip().splitlines()[-1])
    assert [v["variant"] for v in cut["variants"]] == ["paper"]
    assert cut["skipped_over_budget"] == ["conv1_s2d"] and cut["profile"] is None
    wrong = subprocess.run(
        [sys.executable, script, "--tiny", "--no-profile", "--variants", "paper,conv1_c3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert wrong.returncode != 0 and "unknown rewrite ['conv1_c3']" in wrong.stderr


def test_the_variant_check_catches_a_rewrite_that_changes_the_network(root, monkeypatch):
    monkeypatch.syspath_prepend(str(root / "benchmarks"))
    import alexnet_227_variants as variants

    torch.manual_seed(0)
    paper = models.AlexNet(num_classes=1000, width=0.25)
    lrn, _ = variants.rewrite(paper, "library_lrn")
    assert variants.max_relative_difference(paper, lrn) < 1e-5
    lrn.features[2].module.size = 3  # a window of 3 channels instead of 5
    assert variants.max_relative_difference(paper, lrn) > 1e-2
    dense, _ = variants.rewrite(paper, "dense_groups")
    with torch.no_grad():
        dense.features[4].weight[:8] *= 1.5  # eight of conv2's kernels changed
    assert variants.max_relative_difference(paper, dense) > 1e-3
    halved = copy.deepcopy(paper)  # the same logits, half of conv1's gradients
    halved.features.insert(1, HalvesTheGradient())
    assert variants.max_relative_difference(paper, halved) > 0.4


class HalvesTheGradient(nn.Module):
    """The identity going forward, half the gradient coming back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x + (0.5 * x).detach()


@pytest.mark.parametrize("groups, size", [(1, 5), (2, 5), (2, 4), (4, 3)])
def test_lrn_matches_local_response_norm_on_each_group_both_ways(groups, size):
    torch.manual_seed(0)
    library = models.paper_lrn(size=size)
    x = (30 * torch.randn(3, 96, 5, 5, dtype=torch.float64)).relu().requires_grad_()
    grad = torch.randn_like(x)
    expected = torch.cat([library(part) for part in x.chunk(groups, dim=1)], dim=1)
    (expected_grad,) = torch.autograd.grad(expected, x, grad)
    band = models.LRN(size, groups=groups)
    channels_last = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    for inputs in (x, channels_last):
        out = band(inputs)
        (out_grad,) = torch.autograd.grad(out, inputs, grad)
        assert out.dtype == inputs.dtype
        assert torch.allclose(out, expected, rtol=1e-12)
        assert torch.allclose(out_grad, expected_grad, rtol=1e-10, atol=1e-14)
    low = band(x.detach().bfloat16())  # the GPU's precision: within bfloat16's rounding
    assert torch.allclose(low.double(), expected, rtol=2e-2, atol=1e-2)
    with pytest.raises(ValueError, match="channels divisible by 2; got 7"):
        models.LRN(groups=2)(torch.ones(1, 7, 2, 2))


def test_lrn_in_float16_holds_activations_whose_squares_overflow_it():
    """Older GPUs train in float16, where a^2 is infinite above |a| = 256 (and inf * 0 in the
    band product is nan); LRN squares sqrt(alpha) * a, so it stays finite and within float16's
    rounding, both ways."""
    torch.manual_seed(0)
    x = 2000 * torch.randn(2, 96, 3, 3, dtype=torch.float64)
    assert (x.abs() > 256).float().mean() > 0.8
    lrn = models.LRN(groups=2)
    half = x.half().requires_grad_()
    out = lrn(half)
    (grad,) = torch.autograd.grad(out.float().sum(), half)
    expected = lrn(x.requires_grad_())
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    assert out.dtype == torch.float16 and torch.isfinite(grad).all()
    assert torch.allclose(out.double(), expected, rtol=5e-3, atol=1e-3)
    assert torch.allclose(grad.double(), expected_grad, rtol=2e-2, atol=2e-3)
    with pytest.raises(ValueError, match="alpha >= 0"):
        models.LRN(alpha=-1e-4)


@pytest.mark.parametrize(
    "kernel, stride, padding, size", [(11, 4, 0, 227), (7, 2, 3, 224), (5, 3, 1, 31), (4, 4, 0, 35)]
)
def test_space_to_depth_computes_the_strided_convolution(kernel, stride, padding, size):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, kernel, stride, padding)
    s2d = models.SpaceToDepthConv2d(3, 8, kernel, stride, padding)
    s2d.load_state_dict(conv.state_dict())
    x = torch.randn(2, 3, size, size + 3)  # odd sizes: blocks past the last output are cropped
    with torch.no_grad():
        expected = conv(x)
        assert torch.allclose(s2d(x), expected, atol=1e-5)
        s2d.to(memory_format=torch.channels_last)  # a channels_last model gets a channels_last map
        out = s2d(x)
        assert out.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(out, expected, atol=1e-5)
        s2d.weight[:, :, -1, -1] += 1  # the last tap must be used, not cut off
        assert not torch.allclose(s2d(x), expected, atol=1e-3)
    for refused in (dict(padding="valid"), dict(groups=3), dict(padding_mode="reflect")):
        with pytest.raises(ValueError, match="space-to-depth needs .* use nn.Conv2d"):
            models.SpaceToDepthConv2d(6, 6, 3, 2, **refused)
    with pytest.raises(ValueError, match="space-to-depth needs"):
        models.SpaceToDepthConv2d(3, 8, (3, 5), 2)


@pytest.mark.parametrize("groups", [2, 4])
def test_dense_grouped_convolution_matches_the_grouped_one_both_ways(groups):
    torch.manual_seed(0)
    grouped = nn.Conv2d(8, 12, 3, padding=1, groups=groups).double()
    dense = models.DenseGroupedConv2d(8, 12, 3, padding=1, groups=groups).double()
    dense.load_state_dict(grouped.state_dict())
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64, requires_grad=True)
    found = []
    for conv in (grouped, dense):
        out = conv(x)
        found.append([out, *torch.autograd.grad(out.square().sum(), [x, *conv.parameters()])])
    for expected, got in zip(*found, strict=True):
        assert got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-12)
    with torch.no_grad():
        dense.weight[:3] *= 2  # one group's kernels: the others' outputs must not change
        out = dense(x)
    changed = (out - found[0][0]).abs().amax(dim=(0, 2, 3)) > 1e-9
    assert changed.tolist() == [True] * 3 + [False] * 9
    with pytest.raises(ValueError, match="pads with zeros; got padding_mode='circular'"):
        models.DenseGroupedConv2d(4, 4, 3, groups=2, padding_mode="circular")


def test_alexnet_fast_convs_is_the_same_network_with_the_same_state_dict():
    torch.manual_seed(0)
    paper = models.AlexNet(width=0.25).double()
    fast = models.AlexNet(width=0.25, fast_convs=True).double()
    assert isinstance(fast.features[0], models.SpaceToDepthConv2d)
    assert [type(m) for m in fast.features if isinstance(m, nn.Conv2d)][1:] == [
        models.DenseGroupedConv2d,
        nn.Conv2d,
        models.DenseGroupedConv2d,
        models.DenseGroupedConv2d,
    ]
    fast.load_state_dict(paper.state_dict())  # strict: the same names and shapes
    x = torch.rand(2, 3, 227, 227, dtype=torch.float64)
    y = torch.tensor([3, 999])
    found = []
    for net in (paper.eval(), fast.eval()):
        logits = net(x)
        found.append([logits, *torch.autograd.grad(F.cross_entropy(logits, y), net.parameters())])
    for expected, got in zip(*found, strict=True):
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_timings_wait_for_the_work_and_take_the_median():
    calls = []
    median = throughput.median_ms(lambda: calls.append(1), "cpu", repeats=4)
    assert len(calls) == 5 and median >= 0  # one warm-up call, then the repeats
    with pytest.raises(ValueError, match="at least 1"):
        throughput.median_ms(lambda: None, "cpu", repeats=0)
    layer = models.LRN(groups=2)
    assert throughput.pass_ms(layer, torch.rand(2, 4, 3, 3)) > 0
