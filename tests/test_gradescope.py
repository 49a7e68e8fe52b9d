"""The Gradescope autograder: the bundle, its setup.sh as Gradescope's image would run it, and
run_autograder, which writes a results.json whatever happens."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile

import pytest
import tomllib

from course_utils.instructor import gradescope, notebooks

NB01 = "01_convolution_1d.ipynb"


def _extract(tmp_path, root, **options):
    """Build the bundle, unpack it as Gradescope does; the autograder folder."""
    bundle, chosen = gradescope.build_bundle(tmp_path / "bundle.zip", root, **options)
    autograder = tmp_path / "autograder"
    with zipfile.ZipFile(bundle) as z:
        z.extractall(autograder / "source")
    (autograder / "source" / "run_autograder").chmod(0o755)
    (autograder / "submission").mkdir()
    return autograder


def _run(autograder, python=sys.executable) -> dict:
    """Run the autograder script as Gradescope does; its results.json."""
    done = subprocess.run(
        ["bash", str(autograder / "source" / "run_autograder")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "AUTOGRADER_ROOT": str(autograder), "COURSE_PYTHON": python},
    )
    assert done.returncode == 0, done.stderr
    return json.loads((autograder / "results/results.json").read_text())


@pytest.mark.sandbox
def test_the_bundle_grades_a_submission_under_any_name_or_nesting(tmp_path, root):
    autograder = _extract(tmp_path, root)
    with zipfile.ZipFile(tmp_path / "bundle.zip") as z:
        names = set(z.namelist())
    assert {"setup.sh", "run_autograder", "course/course.json"} <= names
    assert any(n.startswith("course/course_utils/instructor/grading/hidden/") for n in names)
    # Gradescope keeps the student's file name, which need not match ours
    (autograder / "submission" / "my work.ipynb").write_text(
        (root / "notebooks" / NB01).read_text()
    )
    results = _run(autograder)
    mine = [t for t in results["tests"] if t["name"].startswith(NB01)]
    assert results["score"] == 8.0 and all(t["score"] == t["max_score"] for t in mine)
    # the bundle's other notebooks are listed too, each with its points and why it got none
    others = [t for t in results["tests"] if t not in mine]
    assert len(others) == len(notebooks.notebook_paths(root / "notebooks")) - 1
    assert all(t["score"] == 0 < t["max_score"] and t["output"] == "not submitted" for t in others)
    # a GitHub submission: the student's whole repository, checkpoints included
    shutil.rmtree(autograder / "submission")
    nested = autograder / "submission" / "notebooks"
    (nested / ".ipynb_checkpoints").mkdir(parents=True)
    (nested / NB01).write_text((root / "notebooks" / NB01).read_text())
    (nested / ".ipynb_checkpoints" / "01_convolution_1d-checkpoint.ipynb").write_text("{")
    results = _run(autograder)
    assert results["score"] == 8.0, results
    assert results["output"].startswith(f"{NB01}: graded 'notebooks/{NB01}'; 02_")
    assert "checkpoint" not in results["output"]  # not a word of the checkpoint


@pytest.mark.sandbox
def test_an_assignments_bundle_grades_only_its_notebook(tmp_path, root):
    autograder = _extract(tmp_path, root, only=["05"])
    assert [p.name for p in (autograder / "source/course/notebooks").iterdir()] == [
        "05_pooling.ipynb"
    ]
    results = _run(autograder)
    assert results["score"] == 0 and "No notebook found in your upload" in results["output"]
    (autograder / "submission" / "homework.ipynb").write_text(
        (root / "notebooks" / NB01).read_text()
    )
    results = _run(autograder)
    assert results["score"] == 0 and results["tests"] == []
    assert f"Your upload holds {NB01}, the notebook of another assignment" in results["output"]
    assert "this assignment grades 05_pooling.ipynb" in results["output"]


def test_a_sandbox_that_cannot_start_still_gives_a_results_json(tmp_path, root, monkeypatch):
    from course_utils.instructor.grading import pool
    from course_utils.instructor.grading.sandbox import SandboxUnavailable

    def no_namespaces():
        raise SandboxUnavailable("unshare: Operation not permitted")

    monkeypatch.setattr(pool, "preflight", no_namespaces)
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / NB01).write_text((root / "notebooks" / NB01).read_text())
    results = gradescope.run_autograder(tmp_path)
    written = json.loads((tmp_path / "results" / "results.json").read_text())
    assert written == results and results["score"] == 0
    assert (
        "cannot isolate submissions" in results["output"]
        and "Operation not permitted" in results["output"]
    )


def test_a_grader_that_cannot_even_start_still_gives_a_results_json(tmp_path, root):
    autograder = _extract(tmp_path, root)
    results = _run(autograder, python="/bin/false")
    assert (
        results["score"] == 0 and "failed before it could grade your notebook" in results["output"]
    )


def test_bundle_refuses_what_it_cannot_write_in_one_line(tmp_path, root):
    (tmp_path / "old.zip").write_text("an earlier bundle")
    with pytest.raises(FileExistsError, match="pass --replace"):
        gradescope.build_bundle(tmp_path / "old.zip", root)
    assert (tmp_path / "old.zip").read_text() == "an earlier bundle"
    gradescope.build_bundle(tmp_path / "old.zip", root, replace=True, only=["01"])
    with pytest.raises(ValueError, match="is a file, so .* cannot be written under it"):
        gradescope.build_bundle(tmp_path / "old.zip" / "new.zip", root)
    with pytest.raises(ValueError, match="is a folder; name the zip file"):
        gradescope.build_bundle(tmp_path, root)
    with pytest.raises(ValueError, match="--only 42 names no course notebook"):
        gradescope.build_bundle(tmp_path / "new.zip", root, only=["42"])


#: The image Pythons setup.sh must serve: 3.10.12 is Ubuntu 22.04's; 3.11.0 still takes the
#: Python 3.10 lock (soupsieve's newest needs 3.11.5); 3.11.9 takes the main lock.
IMAGE_PYTHONS = [(3, 10, 12), (3, 11, 0), (3, 11, 9)]


def test_setup_sh_installs_the_lock_of_the_images_python_with_cpu_torch(root, tmp_path):
    """What setup.sh installs, resolved by pip for each image Python on Linux x86-64 against the
    package index (dry runs, one at a time: each keeps a core busy for about 10 s, and side by
    side they would slow the notebooks' worker): the lock pins.py picks, without the CUDA build's
    packages; torch and torchvision come from PyTorch's CPU index at the pinned versions."""
    assert '"$COURSE/requirements/pins.py"' in gradescope.SETUP_SH
    assert f"--index-url {gradescope.TORCH_CPU_INDEX}" in gradescope.SETUP_SH
    sys.path.insert(0, str(root / "requirements"))
    try:
        import pins
    finally:
        sys.path.remove(str(root / "requirements"))
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = [d for d in project if not re.match(r"^(torch|torchvision)\b", d)]
    platforms = [
        a for minor in range(17, 29) for a in ("--platform", f"manylinux_2_{minor}_x86_64")
    ]
    deadline = time.monotonic() + 600  # for the three runs together
    for python in IMAGE_PYTHONS:
        lock = (root / pins.constraints_file(python)).read_text().splitlines()
        pinned = {line.split("==")[0] for line in lock if re.match(r"^(torch|torchvision)==", line)}
        assert pinned == {"torch", "torchvision"}, python
        kept = [line for line in lock if not re.match(gradescope.CUDA_ONLY, line)]
        assert not any(line.startswith("nvidia-") for line in kept), python
        folder = tmp_path / ".".join(map(str, python))
        folder.mkdir()
        (folder / "cpu.txt").write_text("\n".join(kept) + "\n")
        run = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
             "--target", str(folder / "never"), "--report", str(folder / "report.json"),
             "--only-binary=:all:", "--implementation", "cp", "--python-version", ".".join(map(str, python)),
             *platforms, "--platform", "manylinux2014_x86_64", "-c", str(folder / "cpu.txt"), *wanted],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            timeout=max(1.0, deadline - time.monotonic()),
        )  # fmt: skip
        assert run.returncode == 0, (python, run.stderr[-2000:])
        report = json.loads((folder / "report.json").read_text())
        installed = {item["metadata"]["name"].lower() for item in report["install"]}
        assert {"numpy", "matplotlib", "scikit-learn", "nbclient"} <= installed, python
        assert not any(name.startswith("nvidia-") for name in installed), python
