"""Every benchmark still runs and prints its one JSON line. The figures themselves are read by
people (benchmarks/README.md); here each script runs at its smallest size, and what its line says
about that small run is checked."""

import json
import subprocess
import sys

import pytest

from course_utils.env import threads

#: script -> the smallest arguments that still take every code path
SMALL_RUNS = {
    "alexnet_ablations.py": ["--tiny"],
    "antialias_shift.py": ["--images", "40", "--seeds", "2"],
    "import_time.py": [],
    "conv2d_speed.py": [],
    "channels_last_reading.py": ["--images", "16", "--shifts", "2", "--seeds", "1"],
    "gpu_course.py": ["--tiny", "--only", "03", "--fp16", "06", "--log-dir", "{tmp}"],
    "grading_throughput.py": ["--n", "2", "--jobs", "1"],
    "transfer_gain.py": ["--seeds", "1", "--steps", "2", "--ks", "1", "--scratch-lrs", "3e-3"]
    + ["--scratch-steps", "2", "--far", "--eval-per-class", "10"],
    "notebook_times.py": ["--only", "03"],
    "notebook_cells.py": ["--only", "07", "08"],
    "training_loop.py": ["--tiny"],
}
#: scripts that test_alexnet.py runs
RUN_ELSEWHERE = {"alexnet_throughput.py", "alexnet_227_variants.py"}


def test_every_benchmark_is_run_by_a_test_and_listed_in_the_readme(root):
    scripts = {path.name for path in (root / "benchmarks").glob("*.py")}
    assert scripts == set(SMALL_RUNS) | RUN_ELSEWHERE
    table = (root / "benchmarks" / "README.md").read_text()
    assert all(f"`{script}" in table for script in scripts), "each needs a row in the README"


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(s, marks=pytest.mark.sandbox) if s == "grading_throughput.py" else s
        for s in sorted(SMALL_RUNS)
    ],
)
def test_benchmark_runs_and_prints_its_figures(root, script, tmp_path):
    arguments = [a.format(tmp=tmp_path) for a in SMALL_RUNS[script]]
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / script), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["benchmark"] == script.removesuffix(".py")
    if script == "import_time.py":
        assert figures["torch_imported"] is False and 0 < figures["median_s"] < 5
    elif script == "channels_last_reading.py":
        assert (figures["images"], figures["shifts"], figures["networks"]) == (16, 2, 1)
        assert len(figures["max_pool_ms"]) == 6 and all(
            t > 0 for t in figures["max_pool_ms"].values()
        )
        assert set(figures["read_seconds"]) == {"default", "channels_last"}
        assert figures["largest_relative_difference"] < 1e-5  # the same readings either way
    elif script == "conv2d_speed.py":
        ratios = figures["ratio_to_faster_F.conv2d"]
        assert min(ratios["F.conv2d_nchw"], ratios["F.conv2d_channels_last"]) == 1.0
        assert set(ratios) == {"F.conv2d_nchw", "F.conv2d_channels_last", "im2col", "naive"}
        assert figures["allocator_pinned"] is sys.platform.startswith("linux")
    elif script == "grading_throughput.py":
        assert figures["submissions"] == 2 and figures["statuses"] == {"graded": 2}
    elif script == "transfer_gain.py":
        from course_utils.transfer_methods import METHODS

        assert set(figures["table"]) == {f"{m} @ 1" for m in METHODS}
        assert all(0 <= row["mean"] <= 1 and row["n"] == 1 for row in figures["table"].values())
        assert figures["gain_at_1"]["best_transfer"] in METHODS
        assert figures["scratch_recipes"]["1"]["steps"] == 2 and "far_target" in figures
        assert figures["test_images"] == 10 * 10  # ten classes
        assert "the first 10 of each class" in figures["far_target"]["target"]
        assert figures["threads"] == threads()  # COURSE_THREADS when set (make test's workers)
    elif script == "notebook_cells.py":
        rows = figures["notebooks"]
        assert set(rows) == {"07", "08"}
        for row in rows.values():
            # AlexNet's two notebooks, each one sitting: at most 25 cells from "## 1." to "## Summary"
            assert 0 < row["lecture_path_cells"] <= 25 < row["cells"]
            assert 0 < row["longest_prose_words"] <= 220 and row["longest_code_lines"] > 0
    elif script == "alexnet_ablations.py":
        assert figures["epochs"] == 1 and figures["seeds"] == [0, 1]
        rows = figures["variants"]
        assert (
            set(rows) == {"full network", "no augmentation"}
            and rows["full network"]["beyond_noise"] is False
        )
        for r in rows.values():
            assert r["low"] <= r["mean"] <= r["high"] and len(r["accuracy"]) == 2
            assert len(r["train_accuracy"]) == 2
            assert min(r["train_accuracy"]) <= r["train_mean"] <= max(r["train_accuracy"])
    elif script == "antialias_shift.py":
        assert figures["images"] == 40 and figures["seeds"] == 2
        plain = figures["table"]["plain"]
        assert (
            set(plain)
            == set(figures["table"]["antialiased"])
            == set(figures["antialiased_minus_plain"])
        )
        assert 0 <= plain["consistency_1px_zeros"]["mean"] <= 1
        assert plain["feature_change_1px"]["mean"] > 0
    elif script == "training_loop.py":
        assert figures["tiny"] is True and figures["history_epochs"] == 1
        assert (
            figures["fit_vs_bare"] > 0
            and 0 < figures["feed_share"]
            and 0 <= figures["accuracy"] <= 1
        )
    elif script == "gpu_course.py":
        assert figures["passed"] == figures["runs"] == 2 and figures["mode"].startswith("tiny")
        rows = figures["rows"]  # 06 at the default precision runs under nbval
        assert [(r["notebook"][:2], r["course_precision"]) for r in rows] == [
            ("03", "auto"),
            ("06", "fp16"),
        ]
        assert all(r["headline"] and r["cells"] > 10 for r in rows)
        assert rows[0]["training_runs"] == 0 and rows[0]["largest_training_run"] is None
        for lenet in rows[1:]:
            run = lenet["largest_training_run"]
            assert run["images"] > 0 and run["images_per_s"] > 0 and 0 <= run["val_acc"] <= 1
        if rows[0]["device"] == "cpu":  # the switch is reported, the CPU stays in fp32
            assert [r["precision"] for r in rows] == ["fp32", "fp32 (COURSE_PRECISION=fp16)"]
        assert (tmp_path / "06_lenet.fp16.log").read_text().count("# ---- code cell") == rows[1][
            "cells"
        ]
    else:
        assert figures["status"] == {"03_why_convolutions.ipynb": "ok"}


def _one(root, tmp_path, notebook: dict) -> dict:
    """Run gpu_course.py's child on ``notebook`` (nbformat 4 JSON); its report."""
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(notebook | {"metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    report, log = tmp_path / "report.json", tmp_path / "run.log"
    command = [sys.executable, str(root / "benchmarks" / "gpu_course.py"), "--one", str(path)]
    done = subprocess.run(
        [*command, "--report", str(report), "--log", str(log)], capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    return json.loads(report.read_text())


def _code(*sources: str) -> dict:
    return {
        "cells": [
            {"cell_type": "code", "source": s, "metadata": {}, "outputs": []} for s in sources
        ]
    }


def test_gpu_course_reports_the_failing_cell_and_keeps_the_headline(root, tmp_path):
    report = _one(
        root,
        tmp_path,
        _code("from course_utils import headline\nheadline('before')", "x = 1 / 0", "print(2)"),
    )
    assert report["status"] == "failed" and report["cells"] == 1 and report["headline"] == "before"
    assert report["error"] == "code cell 1: ZeroDivisionError: division by zero"
    assert "ZeroDivisionError" in (tmp_path / "run.log").read_text()


def test_gpu_course_refuses_a_magic_with_a_reason(root, tmp_path):
    report = _one(root, tmp_path, _code("%matplotlib inline"))
    assert report == {
        "status": "unrunnable",
        "error": "nb.ipynb code cell 0 uses an IPython magic or shell line, which a plain script "
        "cannot run",
    }
