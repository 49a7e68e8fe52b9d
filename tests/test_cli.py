"""The CLI: doctor, readme, strip and run (on the real notebook 01 and on broken notebooks)."""

import os
import subprocess
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import course_utils
from course_utils.instructor import runner


def cli(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "course_utils", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def test_doctor_reports_every_topic_with_fixes():
    done = cli("doctor")
    assert done.returncode == 0, done.stdout + done.stderr
    for topic in (
        "python",
        "torch",
        "torchvision",
        "device",
        "jupyter kernel",
        "flags",
        "data cache",
        "network",
    ):
        assert topic in done.stdout
    assert "COURSE_OFFLINE=1" in done.stdout and "stand-in" in done.stdout
    assert "everything needed is in place" in done.stdout


def test_output_to_a_file_whose_encoding_lacks_the_symbols_is_written_not_a_crash():
    """Windows writes a redirected ``python -m course_utils doctor > report.txt`` in cp1252."""
    done = subprocess.run(
        [sys.executable, "-m", "course_utils", "doctor"],
        capture_output=True,
        env=dict(os.environ, PYTHONIOENCODING="cp1252"),
        timeout=600,
    )
    report = done.stdout.decode("cp1252")
    assert done.returncode == 0, report + done.stderr.decode("cp1252")
    assert "? torch" in report and "everything needed is in place" in report


def doctor_in_process(monkeypatch, capsys, **environment):
    """``python -m course_utils doctor`` under ``environment``, run in this process (the two
    tests above run the real command); (exit status, what it printed)."""
    from course_utils.__main__ import main

    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    status = main(["doctor"])
    return status, capsys.readouterr().out


def test_doctor_fails_on_a_thread_count_that_setup_would_refuse(monkeypatch, capsys):
    status, out = doctor_in_process(monkeypatch, capsys, COURSE_THREADS="all")
    assert status == 1, out
    assert "✗ flags" in out and "COURSE_THREADS=all" in out
    assert "fix: COURSE_THREADS='all' is not a positive whole number" in out
    assert "1 problem(s) need fixing" in out


def test_doctor_fails_on_a_misspelt_flag(monkeypatch, capsys):
    status, out = doctor_in_process(monkeypatch, capsys, COURSE_OFFLINE="ture")
    assert status == 1, out
    assert "fix: COURSE_OFFLINE='ture' is neither on nor off" in out
    assert "1 problem(s) need fixing" in out


def test_doctor_explains_a_cache_path_that_is_a_file(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "data"
    blocker.write_text("not a folder")
    _, out = doctor_in_process(monkeypatch, capsys, COURSE_DATA_DIR=str(blocker))
    assert f"{blocker} exists but is not a folder" in out
    assert "fix: move that file away or set COURSE_DATA_DIR" in out
    assert blocker.read_text() == "not a folder", "doctor never touches what it reports"


def test_doctor_does_not_count_a_failed_download_as_data(tmp_path, monkeypatch, capsys):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)  # what a failed MNIST download leaves
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"x" * 2_000_000)
    _, out = doctor_in_process(monkeypatch, capsys, COURSE_DATA_DIR=str(tmp_path))
    line = next(x for x in out.splitlines() if "data cache" in x)
    assert "MNIST (empty: a download that failed)" in line
    assert "cifar-10-batches-py (2.0 MB)" in line, line  # the one folder that holds data


def test_readme_check_passes_on_the_repository(root):
    done = cli("readme", "--check", cwd=root)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout


def test_readme_check_fails_on_a_stale_table(root, tmp_path):
    stale = tmp_path / "README.md"
    text = (root / "README.md").read_text().replace("[01 ·", "[00 ·")
    stale.write_text(text)
    done = cli("readme", "--check", "--readme", str(stale), cwd=root)
    assert done.returncode == 1 and "stale" in done.stderr


def test_readme_without_a_file_or_its_markers_says_so_in_one_line(root, tmp_path):
    missing = cli("readme", "--readme", str(tmp_path / "nope.md"), cwd=root)
    assert missing.returncode == 2 and "cannot be read" in missing.stderr
    (tmp_path / "plain.md").write_text("# A README without the table\n")
    unmarked = cli("readme", "--readme", str(tmp_path / "plain.md"), cwd=root)
    assert unmarked.returncode == 2 and "lacks the markers" in unmarked.stderr
    for done in (missing, unmarked):
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_strip_names_an_unreadable_notebook_and_strips_the_others(tmp_path):
    good, broken = tmp_path / "good.ipynb", tmp_path / "broken.ipynb"
    cell = new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", text="1\n")])
    nbformat.write(new_notebook(cells=[cell]), good)
    broken.write_text("{not json")
    done = cli("strip", str(broken), str(good))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{broken} is not a readable Jupyter notebook" in done.stderr
    assert f"stripped {good}" in done.stdout and nbformat.read(good, 4).cells[0].outputs == []


def test_run_executes_notebook_01_and_prints_its_row(root, tmp_path):
    done = cli("run", "--only", "01", "--fast", "--out", str(tmp_path), cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    row = next(
        line for line in done.stdout.splitlines() if line.startswith("01_convolution_1d.ipynb")
    )
    assert " ok " in row and "sliding" in row
    executed = nbformat.read(tmp_path / "01_convolution_1d.ipynb", as_version=4)
    assert any(cell.get("outputs") for cell in executed.cells)
    if os.name == "posix":  # the kernel talks over IPC files, so ipykernel has nothing to warn of
        assert "IPKernelApp" not in done.stdout + done.stderr, done.stderr


def test_run_with_an_unknown_notebook_lists_the_ones_there_are(root, tmp_path):
    done = cli("run", "--only", "42", "--out", str(tmp_path), cwd=root)
    assert done.returncode == 2 and not list(tmp_path.iterdir())
    assert "no notebooks matched" in done.stderr
    assert "--only takes their numbers or names: 01_convolution_1d," in done.stderr
    assert "07_alexnet" in done.stderr


def test_run_refuses_bad_settings_and_arguments_before_running_anything(root, tmp_path):
    for name, value in (("COURSE_FAST", "ture"), ("COURSE_CHECK_STRICT", "y")):
        env = dict(os.environ, **{name: value})
        done = cli("run", "--only", "01", "--out", str(tmp_path), cwd=root, env=env)
        assert done.returncode == 2 and not list(tmp_path.iterdir()), done.stdout
        assert f"no notebook was run: {name}='{value}' is neither on nor off" in done.stderr
    done = cli(
        "run",
        "--only",
        "01",
        "--out",
        str(tmp_path),
        cwd=root,
        env=dict(os.environ, COURSE_THREADS="all"),
    )
    assert done.returncode == 2 and "COURSE_THREADS='all' is not a positive" in done.stderr
    (tmp_path / "a file").write_text("mine")
    done = cli("run", "--only", "01", "--out", str(tmp_path / "a file"), cwd=root)
    assert done.returncode == 2 and "is a file; name a folder" in done.stderr, done.stderr
    assert (tmp_path / "a file").read_text() == "mine"
    done = cli("run", "--only", "01", "--cell-timeout", "0", "--out", str(tmp_path), cwd=root)
    assert done.returncode == 2 and "--cell-timeout: needs a number above 0" in done.stderr


def _write(path, *cells):
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_run_reports_failures_and_keeps_going(tmp_path):
    source = tmp_path / "nbs"
    source.mkdir()
    _write(source / "01_broken.ipynb", new_markdown_cell("# Broken"), new_code_cell("1 / 0"))
    _write(
        source / "02_fine.ipynb",
        new_markdown_cell("# Fine"),
        new_code_cell("import course_utils\ncourse_utils.headline('all good')"),
    )
    (source / "03_garbage.ipynb").write_text("{ not json")
    done = cli("run", "--notebooks-dir", str(source), "--out", str(tmp_path / "out"))
    assert done.returncode == 1
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line[:2].isdigit()}
    assert "failed" in rows["01_broken.ipynb"] and "ZeroDivisionError" in rows["01_broken.ipynb"]
    assert " ok " in rows["02_fine.ipynb"] and "all good" in rows["02_fine.ipynb"]
    assert "unreadable" in rows["03_garbage.ipynb"]
    assert (tmp_path / "out/01_broken.ipynb").exists()


def test_run_keeps_what_an_output_widget_shows_without_mimicking_the_widget(tmp_path, monkeypatch):
    """nbclient's Output-widget stand-in writes to the kernel's shell socket while the cell's reply
    is awaited there, which can hang the run (nbclient issue 312): the runner must not use it."""
    import nbclient.client

    made = []
    monkeypatch.setattr(nbclient.client, "OutputWidget", lambda *args: made.append(args) or None)
    code = "import ipywidgets as W\nout = W.Output()\ndisplay(out)\nwith out:\n    print('shown')"
    path = tmp_path / "widget.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(code)]), path)
    result = runner.run_notebook(path, tmp_path / "out", cell_timeout=120)
    assert result.status == "ok" and made == []
    outputs = nbformat.read(tmp_path / "out" / "widget.ipynb", 4).cells[0].outputs
    assert any(o.get("text") == "shown\n" for o in outputs), outputs


def test_headline_is_found_in_outputs(capsys):
    course_utils.headline("a   b\nc")
    printed = capsys.readouterr().out
    nb = new_notebook(cells=[new_code_cell("")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    assert runner.find_headline(nb) == "a b c"


def test_gradescope_with_a_folder_for_out_asks_for_the_zips_name(root, tmp_path):
    done = cli("gradescope", "--out", str(tmp_path), cwd=root)
    assert done.returncode == 2 and not list(tmp_path.iterdir()), done.stdout
    assert f"e.g. --out {tmp_path / 'autograder.zip'}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_saved_notebook_keeps_each_epochs_line_and_no_progress_widget(tmp_path):
    """Progress bars are text redrawn in place and erased: a notebook saved after training and
    reopened without its kernel shows the epoch lines, never "Error displaying widget"."""
    code = (
        "import torch\nfrom torch import nn\nfrom course_utils import train\n"
        "model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))\n"
        "batches = [(torch.randn(8, 1, 2, 2), torch.randint(0, 3, (8,))) for _ in range(3)]\n"
        "history = train.fit(model, batches, epochs=2)"
    )
    path = tmp_path / "fit.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(code)]), path)
    assert runner.run_notebook(path, tmp_path / "out", cell_timeout=120).status == "ok"
    outputs = nbformat.read(tmp_path / "out" / "fit.ipynb", 4).cells[0].outputs
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    printed = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    shown = [line.split("\r")[-1] for line in printed.split("\n")]  # as a front end draws it
    assert [line.split(":")[0] for line in shown if line.strip()] == ["epoch 1", "epoch 2"], shown
