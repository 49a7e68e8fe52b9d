"""Batch grading under attack: one batch of hostile, broken, wrong and correct submissions.

Each submission asserts its exact score and reason. The attacks that try to *read* or *reach*
something return the right answer only when the attempt failed, so full marks prove the
sandbox held; the ones that try to *write* are checked on disk afterwards.
"""

import copy
import csv
import json
import os
import socket
import subprocess
import sys

import nbformat
import pytest

from course_utils.instructor import notebooks
from course_utils.instructor.grading.collect import selected
from course_utils.instructor.grading.grade import grade_folder
from course_utils.instructor.grading.sandbox import FIRST_UID, Limits
from course_utils.instructor.release import release_notebook

pytestmark = pytest.mark.sandbox

SOURCE = notebooks.notebook_paths()[0]
NB = SOURCE.name
#: AlexNet's notebook and the one split off it (its training), in course order
ALEXNET, TRAINING = "07_alexnet.ipynb", "08_training_alexnet.ipynb"
FULL = 8.0
POINTS = {"convolve-full": 2.0, "conv-matrix": 3.0, "conv1d-windows": 3.0}
LIMITS = Limits(wall=40, cell=3, call=2)


def _source_nb():
    return nbformat.read(SOURCE, as_version=4)


def _cell(nb, exercise_id):
    return next(c for c in nb.cells if notebooks.exercise_id(c) == exercise_id)


def _edit(exercise_id, before="", after="", body=None):
    """An edit that prepends/appends code to an exercise cell, or replaces it entirely."""

    def apply(nb):
        cell = _cell(nb, exercise_id)
        if body is not None:
            cell.source = f"# EXERCISE: {exercise_id}\n{body}"
        else:
            lines = cell.source.split("\n", 1)
            cell.source = lines[0] + "\n" + before + "\n" + lines[1] + "\n" + after
        return nb

    return apply


#: The full convolution of x and w without a library convolution (which the exercise rules out).
LOOPLESS = "(sum(w[j] * np.eye(len(x) + len(w) - 1, len(x), -j) for j in range(len(w))) @ x)"
WRONG_CONVOLVE = "def convolve(x, w):\n    w = w[::-1]\n    return " + LOOPLESS + "\n"


def _attacks(listen_port, secrets, victim_files, solved_copies=(), host_writes=()):
    """student -> (edit function or raw bytes, expected score, substring of reason or feedback).

    ``solved_copies``: executed or checked-out copies of the solution notebook the copier looks
    for (it also walks the whole file tree it can see); ``host_writes``: files in the host's
    temporary folders that a submission writes."""
    read_secret = (
        "def convolve(x, w):\n"
        "    for path in SECRETS:\n"
        "        try:\n"
        "            print(open(path).read()[:2000])\n"
        "            return np.zeros(1)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return " + LOOPLESS + "\n"
    ).replace("SECRETS", repr(secrets))
    net = (
        "import socket\n"
        "def convolve(x, w):\n"
        "    try:\n"
        f"        socket.create_connection(('127.0.0.1', {listen_port}), timeout=1).sendall(b'leak')\n"
        "        return np.zeros(1)\n"
        "    except OSError:\n"
        "        return " + LOOPLESS + "\n"
    )
    overwrite = (
        "def convolve(x, w):\n"
        "    hits = 0\n"
        f"    for path in {victim_files!r}:\n"
        "        try:\n"
        "            open(path, 'w').write('student,notebook,score\\nmallory,x,1000\\n')\n"
        "            hits += 1\n"
        "        except OSError:\n"
        "            pass\n"
        "    return np.zeros(1) if hits else " + LOOPLESS + "\n"
    )
    forge = (
        "import io, os, json, struct, pickle\n"
        "class Boom:\n"
        "    def __reduce__(self):\n"
        "        return (os.system, ('touch /tmp/course-grading-pwned',))\n"
        "def convolve(x, w):\n"
        "    buf = io.BytesIO(); np.save(buf, np.array([Boom()], dtype=object), allow_pickle=True)\n"
        "    import base64\n"
        "    value = {'__npy__': base64.b64encode(buf.getvalue()).decode()}\n"
        "    for fd in range(3, 40):\n"
        "        for frame in ({'t': 'result', 'stage': STAGE, 'value': value}, {'t': 'end', 'stage': STAGE, 'ok': True}):\n"
        "            data = json.dumps(frame).encode()\n"
        "            try:\n"
        "                os.write(fd, struct.pack('>I', len(data)) + data)\n"
        "            except OSError:\n"
        "                pass\n"
        "    os._exit(0)\n"
    )
    copier = (
        "import json, os, time\n"
        "def _solution():\n"
        "    candidates, give_up = list(COPIES), time.monotonic() + 1.0\n"
        "    for parent, dirs, files in os.walk('/'):\n"
        "        dirs[:] = [d for d in dirs if d not in ('proc', 'sys', 'dev')]\n"
        "        candidates += [os.path.join(parent, f) for f in files if f.endswith('.ipynb')]\n"
        "        if time.monotonic() > give_up:\n"
        "            break\n"
        "    for path in candidates:\n"
        "        try:\n"
        "            cells = json.load(open(path))['cells']\n"
        "        except (OSError, ValueError, KeyError, TypeError):\n"
        "            continue\n"
        "        for cell in cells:\n"
        "            text = ''.join(cell.get('source', ''))\n"
        "            if text.startswith('# EXERCISE: convolve-full') and 'BEGIN SOLUTION' in text:\n"
        "                found = {'np': np}\n"
        "                exec(text, found)\n"
        "                return found['convolve']\n"
        "def convolve(x, w):\n"
        "    copied = _solution()\n"
        "    return copied(x, w) if copied else np.zeros(len(x) + len(w) - 1)\n"
    ).replace("COPIES", repr(list(solved_copies)))
    writer = (
        "def convolve(x, w):\n"
        f"    for path in {list(host_writes)!r}:\n"
        "        try:\n"
        "            open(path, 'w').write('a channel to the next student')\n"
        "        except OSError:\n"
        "            pass\n"
        "    return " + LOOPLESS + "\n"
    )
    frames = (  # writes length-prefixed frames to every descriptor it has (the progress pipe)
        "import os, json, struct, base64, ctypes\n"
        "def _send(message):\n"
        "    data = message if isinstance(message, bytes) else json.dumps(message).encode()\n"
        "    for fd in range(3, 40):\n"
        "        try:\n"
        "            os.write(fd, struct.pack('>I', len(data)) + data)\n"
        "        except OSError:\n"
        "            pass\n"
    )
    garbage_then_hide = frames + (  # a frame nested too deep to parse, then outlive the grader
        "def convolve(x, w):\n"
        "    os.setsid()\n"
        "    ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)\n"
        "    _send(b'[' * 100000)\n"
        "    import time\n"
        "    while True:\n"
        "        time.sleep(3600)\n"
    )
    huge_header = frames + (  # a .npy header announcing 8 TiB, with no data behind it
        "def convolve(x, w):\n"
        "    header = \"{'descr': '<f8', 'fortran_order': False, 'shape': (2**40,), }\"\n"
        "    header += ' ' * (63 - len(header) % 64) + '\\n'\n"
        "    npy = b'\\x93NUMPY\\x01\\x00' + struct.pack('<H', len(header)) + header.encode()\n"
        "    stage = 'call:convolve-full:' + str([11, 7, 2, 13, 9].index(len(x)))\n"
        "    _send({'t': 'result', 'stage': stage, 'value': {'__npy__': base64.b64encode(npy).decode()}})\n"
        "    _send({'t': 'end', 'stage': stage, 'ok': True})\n"
        "    return 'not numbers'\n"
    )
    forged_stages = frames + (  # void the setup, escape the time limit, write the feedback
        "_send({'t': 'start', 'stage': 'wall'}); _send({'t': 'end', 'stage': 'wall', 'ok': True})\n"
        "_send({'t': 'start', 'stage': 'setup'}); _send({'t': 'end', 'stage': 'setup', 'ok': False})\n"
        "def convolve(x, w):\n"
        "    stage = 'call:convolve-full:' + str([11, 7, 2, 13, 9].index(len(x)))\n"
        "    _send({'t': 'end', 'stage': stage, 'ok': False, 'error': 'X\\n# Grader notice: void'})\n"
        "    return None\n"
    )
    kernel = (  # what an unprivileged user could still do without the system-call filter
        "import ctypes, mmap, os\n"
        "def convolve(x, w):\n"
        "    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    libc.syscall.restype = ctypes.c_long\n"
        "    escapes = []\n"
        "    if libc.unshare(0x10000000) == 0:\n"
        "        escapes.append('user namespace')\n"
        "    note = b'to the next student'\n"
        "    if libc.syscall(248, b'user', b'note', note, len(note), ctypes.c_long(-4)) >= 0:\n"
        "        escapes.append('keyring')\n"
        "    if libc.prctl(1, 0, 0, 0, 0) == 0:\n"
        "        escapes.append('parent-death signal dropped')\n"
        "    try:\n"
        "        mmap.mmap(-1, 5 * 2**30).close()\n"
        "        escapes.append('5 GiB shared mapping')\n"
        "    except OSError:\n"
        "        pass\n"
        "    return np.zeros(1) if escapes else " + LOOPLESS + "\n"
    )
    return {
        "correct": (lambda nb: nb, FULL, "passed all 5 hidden cases"),
        # frames forged on the progress pipe: nothing hangs, crashes or outlives the grader
        "garbage_frame": (_edit("convolve-full", body=garbage_then_hide), 6.0, "ran longer than"),
        "huge_npy_header": (
            _edit("convolve-full", body=huge_header),
            6.0,
            "a call returned something that is not an array of numbers",
        ),
        "forged_stages": (
            _edit("convolve-full", body=forged_stages),
            6.0,
            "a call raised an exception",
        ),
        "kernel_escapes": (_edit("convolve-full", body=kernel), FULL, "passed all 5 hidden cases"),
        # copying the executed solutions of `make run`, or another checkout's, earns nothing
        "copy_solutions": (_edit("convolve-full", body=copier), 6.0, "wrong values"),
        "write_host_tmp": (_edit("convolve-full", body=writer), FULL, "passed all 5 hidden cases"),
        # correlation equals convolution only for the one-tap kernel: 1 of 5 cases
        "wrong_flip": (
            _edit("convolve-full", body=WRONG_CONVOLVE),
            6.4,
            "passed 1 of 5 hidden cases; wrong values on a hidden case: this is "
            "np.correlate(x, w, 'full'): convolution flips the kernel",
        ),
        # a library convolution, however imported, is the call the exercise rules out
        "library_convolution": (
            _edit(
                "convolve-full",
                body="from numpy import convolve as c\n\ndef convolve(x, w):\n    return c(x, w)\n",
            ),
            6.0,
            "passed 0 of 5 hidden cases; on a hidden case, your `convolve` called a library "
            "convolution (`np.convolve`, `np.correlate`, SciPy's or torch's), which this exercise rules "
            "out",
        ),
        "no_return": (
            _edit("convolve-full", body="def convolve(x, w):\n    " + LOOPLESS + "\n"),
            6.0,
            "a call returned None: does the function end with `return <result>`?",
        ),
        "patch_numpy": (
            _edit(
                "convolve-full",
                body=(
                    "import numpy.testing, torch\n"
                    "np.testing.assert_allclose = lambda *a, **k: None\n"
                    "np.allclose = lambda *a, **k: True\nnp.array_equal = lambda *a, **k: True\n"
                    "torch.allclose = lambda *a, **k: True\n"
                    "def convolve(x, w):\n    return np.zeros(len(x) + len(w) - 1)\n"
                ),
            ),
            6.0,
            "wrong values",
        ),
        "patch_builtins": (
            _edit(
                "convolve-full",
                body=(
                    "import builtins\nbuiltins.abs = lambda *a: 0\nbuiltins.all = lambda *a: True\n"
                    "builtins.max = lambda *a, **k: 0\n"
                    "def convolve(x, w):\n    return np.ones(len(x) + len(w) - 1)\n"
                ),
            ),
            6.0,
            "wrong values",
        ),
        "equal_to_everything": (
            _edit(
                "convolve-full",
                body=(
                    "class Anything:\n    def __eq__(self, other):\n        return True\n"
                    "    __ne__ = lambda self, other: False\n"
                    "def convolve(x, w):\n    return Anything()\n"
                ),
            ),
            6.0,
            "a call returned something that is not an array of numbers",
        ),
        "loop_top_level": (
            _edit(
                "conv-matrix",
                before=(
                    "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True:\n    pass"
                ),
            ),
            5.0,
            "the exercise cell ran past the time limit",
        ),
        "loop_in_function": (
            _edit("convolve-full", body="def convolve(x, w):\n    while True:\n        pass\n"),
            6.0,
            "a call ran longer than 2 s",
        ),
        "spinning_thread": (
            _edit(
                "conv1d-windows",
                after=(
                    "import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()"
                ),
            ),
            FULL,
            "passed all 5 hidden cases",
        ),
        "os_exit": (
            _edit("conv-matrix", before="import os\nos._exit(0)"),
            5.0,
            "crashed the Python process",
        ),
        "sys_exit": (
            _edit("convolve-full", before="import sys\nsys.exit(1)"),
            6.0,
            "raised SystemExit",
        ),
        "keyboard_interrupt": (
            _edit("convolve-full", body="def convolve(x, w):\n    raise KeyboardInterrupt\n"),
            6.0,
            "a call raised KeyboardInterrupt",
        ),
        "read_secrets": (
            _edit("convolve-full", body=read_secret),
            FULL,
            "passed all 5 hidden cases",
        ),
        "network": (_edit("convolve-full", body=net), FULL, "passed all 5 hidden cases"),
        "overwrite_grades": (
            _edit("convolve-full", body=overwrite),
            FULL,
            "passed all 5 hidden cases",
        ),
        "huge_output": (
            _edit("conv1d-windows", after="print('x' * 200_000_000)"),
            FULL,
            "passed all 5",
        ),
        "memory_bomb": (
            _edit(
                "convolve-full",
                body=(
                    "def convolve(x, w):\n    big = np.ones(50 * 2**30 // 8)\n    return big[: len(x) + len(w) - 1]\n"
                ),
            ),
            6.0,
            "a call raised MemoryError",
        ),
        "fork_storm": (
            _edit(
                "conv1d-windows",
                after=(
                    "import os, time\nfor _ in range(500):\n    if os.fork() == 0:\n        time.sleep(600)\n        os._exit(0)"
                ),
            ),
            FULL,
            "passed all 5",
        ),
        "segfault": (
            _edit(
                "conv-matrix",
                body=(
                    "import ctypes\ndef conv_matrix(w, n, padding=0):\n    return ctypes.string_at(0)\n"
                ),
            ),
            5.0,
            "a call crashed the Python process",
        ),
        "pickle_forgery": (
            _edit("convolve-full", body=forge.replace("STAGE", "'call:convolve-full:0'")),
            6.0,
            "a call crashed the Python process",
        ),
        "magics_and_shell": (
            _edit(
                "convolve-full", after="!touch /tmp/course-grading-shell\n%timeit 1 + 1\n%env X=1"
            ),
            FULL,
            "passed all 5",
        ),
        "deleted_exercise": (
            lambda nb: _drop(nb, lambda c: notebooks.exercise_id(c) == "conv-matrix"),
            5.0,
            "no cell starting with `# EXERCISE: conv-matrix`",
        ),
        "duplicated_exercise": (
            _duplicate_wrong,
            6.4,
            "appears more than once, the last one was graded",
        ),
        "deleted_setup_and_checks": (
            lambda nb: _drop(
                nb,
                lambda c: c.cell_type == "code" and ("setup()" in c.source or "check(" in c.source),
            ),
            FULL,
            "passed all 5",
        ),
        "edited_setup_and_checks": (_sabotage_setup_and_checks, FULL, "passed all 5"),
        "unattempted": (
            lambda nb: release_notebook(
                nb, repo_url="https://github.com/o/r", branch="main", name=NB
            ),
            0.0,
            "not attempted",
        ),
        # helpers and imports in a cell of their own run too; a cell that computes does not
        "helper_in_own_cell": (
            _extra_cell(
                "from numpy import eye as _eye\n\ndef _flip(w):\n    return w[::-1]\n",
                "def convolve(x, w):\n    w = _flip(_flip(w))\n    return "
                + LOOPLESS.replace("np.eye", "_eye")
                + "\n",
            ),
            FULL,
            "passed all 5 hidden cases",
        ),
        "helper_beside_code": (
            _extra_cell(
                "demo = [1, 2, 3]\n\ndef _flip(w):\n    return w[::-1]\n",
                "def convolve(x, w):\n    w = _flip(_flip(w))\n    return " + LOOPLESS + "\n",
            ),
            6.0,
            "a call raised NameError: grading runs only the course's setup cell, your cells that "
            "only import or define functions and classes, and the exercise cells (`_flip` is "
            "defined in none of them)",
        ),
        # a fixed version in a new cell below a wrong exercise cell: the exercise cell counts
        "revised_below": (
            _extra_cell(
                "def convolve(x, w):\n    return " + LOOPLESS + "\n", WRONG_CONVOLVE, below=True
            ),
            6.4,
            "which is what makes it commutative; `convolve` is also defined in a cell outside its "
            "exercise cell, and only the exercise cell's version is graded",
        ),
        "invalid_json": (b'{"cells": [', 0.0, "not valid JSON"),
        "json_not_notebook": (b'{"hello": [1, 2, 3]}', 0.0, "not a Jupyter notebook"),
        "json_list": (b"[1, 2, 3]", 0.0, "not a Jupyter notebook"),
        "not_utf8": (b'{"cells": "\xff\xfe\xfa"}', 0.0, "not UTF-8"),
        "too_big": (b" " * (100 * 2**20), 0.0, "over the 20 MB limit"),
    }


def _drop(nb, predicate):
    nb.cells = [c for c in nb.cells if not predicate(c)]
    return nb


def _extra_cell(extra, body, *, below=False):
    """An edit that gives the convolve-full exercise the function ``body`` and puts ``extra`` in
    a code cell of its own above it (or below it)."""

    def apply(nb):
        _edit("convolve-full", body=body)(nb)
        index = nb.cells.index(_cell(nb, "convolve-full")) + below
        nb.cells.insert(index, nbformat.v4.new_code_cell(extra))
        return nb

    return apply


def _duplicate_wrong(nb):
    index = nb.cells.index(_cell(nb, "convolve-full"))
    wrong = copy.deepcopy(nb.cells[index])
    wrong.source = "# EXERCISE: convolve-full\n" + WRONG_CONVOLVE
    wrong.id = "duplicate"
    nb.cells.insert(index + 3, wrong)
    return nb


def _sabotage_setup_and_checks(nb):
    for cell in nb.cells:
        if cell.cell_type == "code" and "setup()" in cell.source:
            cell.source = "import numpy as np\nnp.convolve = lambda *a, **k: 0\nimport course_utils"
        elif cell.cell_type == "code" and "check(" in cell.source:
            cell.source = "print('✅ all good')"
    return nb


#: Students whose files are not named like ours: {student: {file name: content}}.
_RENAMED = {
    "colab_copy": {f"Copy of {NB}": lambda nb: nb},
    "two_files": {
        NB: lambda nb: nb,
        NB.replace(".ipynb", " (1).ipynb"): _edit("convolve-full", body=WRONG_CONVOLVE),
    },
    "own_name": {"homework.ipynb": b'{"cells": ['},
    "linked_copy": {f"Copy of {NB}": "link"},  # a link is never followed, whatever its name
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    submissions, out = root / "submissions", root / "out"
    submissions.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0)
    outside = root / "outside.ipynb"
    outside.write_text(SOURCE.read_text())
    victims = [
        str(out / "grades.csv"),
        str(out / "correct" / "results.json"),
        str(submissions / "correct" / NB),
    ]
    secrets = [
        str(SOURCE),
        str(SOURCE.parent.parent / "course_utils/instructor/grading/hidden/convolution_1d.py"),
        str(SOURCE.parent.parent / "tests/test_checks.py"),
        str(submissions / "correct" / NB),
    ]
    executed = SOURCE.parent.parent / "build" / "executed" / NB
    planted_executed = not executed.exists()
    if planted_executed:  # what `make run` leaves: the executed solution notebook
        executed.parent.mkdir(parents=True, exist_ok=True)
        executed.write_text(SOURCE.read_text())
    checkout = root / "another-checkout" / "notebooks" / NB
    checkout.parent.mkdir(parents=True)
    checkout.write_text(SOURCE.read_text())
    host_writes = [
        f"{folder}/course-grading-{os.getpid()}-written"
        for folder in ("/tmp", "/dev/shm", "/var/tmp")
    ]
    attacks = _attacks(
        listener.getsockname()[1], secrets, victims, [str(executed), str(checkout)], host_writes
    )
    for student, (edit, _, _) in attacks.items():
        folder = submissions / student
        folder.mkdir()
        if isinstance(edit, bytes):
            (folder / NB).write_bytes(edit)
        else:
            nbformat.write(edit(_source_nb()), folder / NB)
    (submissions / "summary.md").mkdir()  # named like a class report
    (submissions / "summary.md" / NB).write_text(SOURCE.read_text())
    (submissions / "symlinked").mkdir()
    (submissions / "symlinked" / NB).symlink_to(outside)
    (submissions / "nothing").mkdir()
    for student, files in _RENAMED.items():
        (submissions / student).mkdir()
        for name, edit in files.items():
            if edit == "link":
                (submissions / student / name).symlink_to(outside)
            elif isinstance(edit, bytes):
                (submissions / student / name).write_bytes(edit)
            else:
                nbformat.write(edit(_source_nb()), submissions / student / name)
    try:
        rows = grade_folder(submissions, out, jobs=2, limits=LIMITS)
    finally:
        if planted_executed:
            executed.unlink()
    try:
        listener.accept()
        contacted = True
    except BlockingIOError:
        contacted = False
    listener.close()
    return {
        "rows": {r.student: r for r in rows},
        "out": out,
        "attacks": attacks,
        "contacted": contacted,
        "submissions": submissions,
        "host_writes": host_writes,
    }


def test_every_submission_gets_its_exact_score_and_reason(batch):
    failures = []
    for student, (_, expected, needle) in batch["attacks"].items():
        row = batch["rows"][student]
        text = row.reason + " | " + " | ".join(e.output for e in row.exercises)
        if row.score != expected or needle not in text:
            failures.append(f"{student}: score {row.score} (expected {expected}); {text}")
    assert not failures, "\n".join(failures)


def test_a_student_folder_named_like_a_report_is_refused_and_harms_no_report(batch):
    row = batch["rows"]["summary.md"]
    assert row.status == "rejected" and "would overwrite the class report" in row.reason
    assert (batch["out"] / "summary.md").is_file()
    assert "# Class summary" in (batch["out"] / "summary.md").read_text()


def test_links_and_missing_notebooks_are_reported(batch):
    assert batch["rows"]["symlinked"].score == 0
    assert "symbolic link" in batch["rows"]["symlinked"].reason
    assert (
        batch["rows"]["nothing"].status == "missing"
        and batch["rows"]["nothing"].reason == "not submitted"
    )


def test_a_renamed_notebook_is_found_by_its_exercises(batch):
    rows = batch["rows"]
    assert rows["colab_copy"].score == FULL and rows["colab_copy"].status == "graded"
    assert rows["colab_copy"].reason == f"graded 'Copy of {NB}' as this notebook"
    # the exact name wins; the other copy is named, not silently dropped
    assert rows["two_files"].score == FULL
    assert rows["two_files"].reason == (
        f"'{NB.replace('.ipynb', ' (1).ipynb')}' also holds this notebook's exercises and was not graded as it"
    )
    assert rows["own_name"].status == "missing" and rows["own_name"].score == 0
    assert "not recognised: 'homework.ipynb' (the file is not valid JSON" in rows["own_name"].reason
    assert rows["own_name"].reason.endswith(f"rename it {NB}")
    assert rows["linked_copy"].status == "missing"
    assert "(the submission is a symbolic link;" in rows["linked_copy"].reason


def test_grades_csv_has_one_intact_row_per_student(batch):
    with open(batch["out"] / "grades.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["student", "notebook", "score", "max_score", "status", "reason"]
    assert {r["student"] for r in rows} == set(batch["rows"])
    assert "mallory" not in {r["student"] for r in rows}
    by_student = {r["student"]: r for r in rows}
    assert by_student["correct"]["score"] == "8" and by_student["correct"]["max_score"] == "8"
    assert by_student["unattempted"]["score"] == "0"
    assert nbformat.read(
        batch["submissions"] / "correct" / NB, as_version=4
    )  # the victim's file is intact


def test_class_tables_show_each_exercise_across_students(batch):
    with open(batch["out"] / "exercises.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["student", "notebook", "exercise", "score", "max_score", "feedback"]
    graded = [student for student, row in batch["rows"].items() if row.exercises]
    assert sorted(r["student"] for r in rows) == sorted(graded * len(POINTS))
    correct = {r["exercise"]: r["score"] for r in rows if r["student"] == "correct"}
    assert correct == {exercise: f"{points:g}" for exercise, points in POINTS.items()}

    summary = (batch["out"] / "summary.md").read_text(encoding="utf-8")
    for exercise, points in POINTS.items():
        scores = [float(r["score"]) for r in rows if r["exercise"] == exercise]
        line = next(line for line in summary.splitlines() if f"| {exercise} |" in line)
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[:6] == [
            NB,
            exercise,
            str(len(scores)),
            f"{sum(scores) / len(scores):.2f} / {points:g}",
            str(scores.count(points)),
            str(scores.count(0.0)),
        ]
    convolve = next(line for line in summary.splitlines() if "| convolve-full |" in line)
    assert convolve.endswith(f"| {_count_wrong_values(rows)} × wrong values on a hidden case |")
    missing = sum(row.status == "missing" for row in batch["rows"].values())
    assert f"{missing} missing" in summary.split("Not graded: ")[1]


def _count_wrong_values(rows):
    return sum(
        r["feedback"].endswith("; wrong values on a hidden case")
        for r in rows
        if r["exercise"] == "convolve-full"
    )


def test_results_json_follows_gradescopes_schema(batch):
    results = json.loads((batch["out"] / "correct" / "results.json").read_text())
    assert results["score"] == FULL
    assert [t["name"] for t in results["tests"]] == [f"{NB}: {i}" for i in POINTS]
    for test in results["tests"]:
        assert set(test) >= {"name", "score", "max_score", "output"}
        assert test["score"] == test["max_score"] == POINTS[test["name"].split(": ")[1]]
    rejected = json.loads((batch["out"] / "invalid_json" / "results.json").read_text())
    assert rejected["score"] == 0 and "not valid JSON" in rejected["tests"][0]["output"]


def test_nothing_reached_the_network_or_ran_outside_the_sandbox(batch):
    assert not batch["contacted"], "a submission connected to a listener on 127.0.0.1"
    assert not os.path.exists("/tmp/course-grading-pwned"), "a pickle payload ran"
    assert not os.path.exists("/tmp/course-grading-shell"), "a shell escape ran"
    left = [path for path in batch["host_writes"] if os.path.exists(path)]
    assert not left, f"a submission wrote to the host: {left}"
    row = batch["rows"]["forged_stages"]
    assert row.status == "graded" and not row.reason, "a forged frame voided the setup"
    reports = [p.read_text() for p in batch["out"].rglob("*") if p.is_file()]
    assert not any("Grader notice" in text for text in reports), "a forged error reached a report"


def test_feedback_reveals_no_solution_hidden_test_or_printed_secret(batch):
    source = SOURCE.read_text()
    solution_lines = set()
    for ex in notebooks.exercises(_source_nb()):
        block = (
            _cell(_source_nb(), ex.id)
            .source.split(notebooks.BEGIN_SOLUTION)[1]
            .split(notebooks.END_SOLUTION)[0]
        )
        solution_lines |= {
            line.strip() for line in block.splitlines() if any(ch.isalnum() for ch in line)
        }
    hidden = (
        SOURCE.parent.parent / "course_utils/instructor/grading/hidden/convolution_1d.py"
    ).read_text()
    hidden_lines = {
        line.strip()
        for line in hidden.splitlines()
        if len(line.strip()) > 20 and line.strip() not in source
    }
    for path in batch["out"].rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            lines = {line.strip() for line in text.splitlines()}
            assert not lines & solution_lines, f"{path} shows solution text"
            assert not any(h in text for h in hidden_lines), f"{path} shows hidden-test text"
            assert "BEGIN SOLUTION" not in text and "hidden/convolution_1d" not in text


def test_no_process_is_left_running(batch):
    ps = subprocess.run(
        ["ps", "-eo", "uid=,args="], capture_output=True, text=True, check=True
    ).stdout
    leftovers = [
        line
        for line in ps.splitlines()
        if int(line.split()[0]) >= FIRST_UID or "course_utils.instructor.grading.zygote" in line
    ]
    assert not leftovers, leftovers


def test_a_sandbox_that_cannot_start_stops_the_batch(tmp_path, monkeypatch):
    from course_utils.instructor.grading import pool
    from course_utils.instructor.grading.sandbox import SandboxUnavailable

    def broken():
        raise SandboxUnavailable("no namespaces here")

    monkeypatch.setattr(pool, "preflight", broken)
    (tmp_path / "subs" / "alice").mkdir(parents=True)
    (tmp_path / "subs" / "alice" / NB).write_text(SOURCE.read_text())
    with pytest.raises(SandboxUnavailable, match="no namespaces"):
        grade_folder(tmp_path / "subs", tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nobody is scored when the sandbox cannot start"


def test_no_sandbox_starts_for_a_mistaken_command_or_a_class_with_nothing_to_grade(
    tmp_path, monkeypatch
):
    """A wrong --only is reported before any sandbox exists, and writes nothing; a class in which
    nobody submitted a notebook gets its reports (every row 'missing') without one, on a machine
    that passes the sandbox's checks."""
    from course_utils.instructor.grading import pool

    def started(*args, **kwargs):
        raise AssertionError("a sandbox was started")

    monkeypatch.setattr(pool, "preflight", started)
    monkeypatch.setattr(pool, "Zygote", started)
    (tmp_path / "subs" / "alice").mkdir(parents=True)
    (tmp_path / "subs" / "alice" / NB).write_text(SOURCE.read_text())
    with pytest.raises(ValueError, match="--only 42 names no course notebook"):
        grade_folder(tmp_path / "subs", tmp_path / "out", only=["42"])
    assert not (tmp_path / "out").exists()
    (tmp_path / "subs" / "alice" / NB).unlink()
    (tmp_path / "subs" / "bob").mkdir()
    (tmp_path / "subs" / "bob" / "notes.ipynb").write_text("{not a notebook")
    rows = grade_folder(tmp_path / "subs", tmp_path / "out", only=["01"])
    assert [(r.student, r.notebook, r.status) for r in rows] == [
        ("alice", NB, "missing"),
        ("bob", NB, "missing"),
    ]
    assert "not recognised: 'notes.ipynb'" in rows[1].reason
    assert (tmp_path / "out" / "grades.csv").read_text().splitlines()[1].startswith("alice,")
    assert grade_folder(tmp_path / "subs", tmp_path / "out2") == []  # nothing named, none submitted


def test_the_graders_course_settings_change_no_grade(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "ture")  # misspelt: setup() in a notebook refuses it
    monkeypatch.setenv("COURSE_OFFLINE", "0")
    (tmp_path / "subs" / "ada").mkdir(parents=True)
    (tmp_path / "subs" / "ada" / NB).write_text(SOURCE.read_text())
    [row] = grade_folder(tmp_path / "subs", tmp_path / "out", jobs=1, limits=LIMITS)
    assert (row.status, row.score, row.reason) == ("graded", FULL, "")


def test_progress_counts_the_notebooks_graded(tmp_path, capsys):
    (tmp_path / "subs" / "ada").mkdir(parents=True)
    (tmp_path / "subs" / "ada" / NB).write_text(SOURCE.read_text())
    (tmp_path / "subs" / "bo").mkdir()
    grade_folder(tmp_path / "subs", tmp_path / "out", jobs=1, limits=LIMITS, progress=True)
    bar = capsys.readouterr().err
    assert "grading" in bar and "2/2" in bar, bar  # bo's missing notebook is counted too
    grade_folder(tmp_path / "subs", tmp_path / "quiet", jobs=1, limits=LIMITS)
    assert "grading" not in capsys.readouterr().err


def test_every_notebook_is_gradable_solved_and_unattempted(tmp_path):
    """Solutions of every source notebook get full marks; the student release gets zero; a copy of
    AlexNet's notebook from before it was split in two (07 and 08 in one file) gets both marks."""
    from course_utils.instructor.grading.hidden import hidden_tests

    submissions = tmp_path / "submissions"
    for student in ("solved", "unattempted", "before_the_split"):
        (submissions / student).mkdir(parents=True)
    for path in notebooks.notebook_paths():
        nb = nbformat.read(path, as_version=4)
        nbformat.write(nb, submissions / "solved" / path.name)
        nbformat.write(
            release_notebook(nb, repo_url="https://github.com/o/r", branch="main", name=path.name),
            submissions / "unattempted" / path.name,
        )
    network, training = (
        nbformat.read(SOURCE.parent / name, as_version=4) for name in (ALEXNET, TRAINING)
    )
    network.cells += training.cells[1:]  # the old 07: the network, then its training
    nbformat.write(network, submissions / "before_the_split" / ALEXNET)
    # limits for a busy machine: the solutions' speed is not what this test checks
    rows = grade_folder(
        submissions, tmp_path / "out", jobs=2, limits=Limits(wall=120, cell=10, call=10)
    )
    old = {row.notebook: row for row in rows if row.student == "before_the_split"}
    assert old[ALEXNET].score == old[ALEXNET].max_score > 0 and not old[ALEXNET].reason
    assert old[TRAINING].score == old[TRAINING].max_score > 0, old[TRAINING].exercises
    assert old[TRAINING].reason == (
        f"graded this notebook's exercises in '{ALEXNET}', a file matched to another notebook "
        "(a copy from before the course split a notebook in two?)"
    )
    assert {r.status for name, r in old.items() if name not in (ALEXNET, TRAINING)} == {"missing"}
    rows = [row for row in rows if row.student != "before_the_split"]
    tests = hidden_tests()
    assert len(rows) == 2 * len(notebooks.notebook_paths())
    for row in rows:
        ids = [
            ex.id
            for ex in notebooks.exercises(nbformat.read(SOURCE.parent / row.notebook, as_version=4))
        ]
        assert row.max_score == sum(tests[i].points for i in ids)
        if row.student == "solved":
            assert row.status == "graded" and not row.reason, (row.notebook, row.reason)
            assert row.score == row.max_score, (row.notebook, [e.output for e in row.exercises])
        else:
            assert row.score == 0 and all("not attempted" in e.output for e in row.exercises), row


def test_only_picks_notebooks_by_number_or_name():
    sources = dict.fromkeys(p.name for p in notebooks.notebook_paths())
    assert selected(sources, None) == list(sources)
    assert selected(sources, ["03", "01_convolution_1d"]) == [NB, sorted(sources)[2]]
    with pytest.raises(ValueError, match="--only 1 names no course notebook"):
        selected(sources, ["01", "1"])


def test_grade_and_release_command_lines(tmp_path):
    student = tmp_path / "subs" / "ada"
    student.mkdir(parents=True)
    student.joinpath(NB).write_text(SOURCE.read_text())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "course_utils",
            "grade",
            str(tmp_path / "subs"),
            "--out",
            str(tmp_path / "out"),
            "--jobs",
            "1",
            "--only",
            "01",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "ada" in done.stdout and "8 / 8" in done.stdout
    assert (
        (tmp_path / "out" / "grades.csv")
        .read_text()
        .splitlines()[1]
        .startswith("ada,01_convolution_1d.ipynb,8,8")
    )
    graded = (tmp_path / "out" / "grades.csv").read_text()
    regrade = [sys.executable, "-m", "course_utils", "grade", str(tmp_path / "subs")]
    regrade += ["--out", str(tmp_path / "out"), "--jobs", "1", "--only", "01"]
    again = subprocess.run(regrade, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "pass --replace" in again.stderr, again.stderr
    assert (tmp_path / "out" / "grades.csv").read_text() == graded, "earlier grades are kept"
    gone = tmp_path / "out" / "bob"  # a student graded earlier, no longer in SUBMISSIONS
    gone.mkdir()
    (gone / "results.json").write_text("{}")
    replaced = subprocess.run([*regrade, "--replace"], capture_output=True, text=True, timeout=600)
    assert replaced.returncode == 0 and "8 / 8" in replaced.stdout, replaced.stderr
    assert "not graded now and not in grades.csv: bob;" in replaced.stdout, replaced.stdout
    assert (gone / "results.json").read_text() == "{}", "--replace deletes nothing"
    release = subprocess.run(
        [
            sys.executable,
            "-m",
            "course_utils",
            "release",
            "--out",
            str(tmp_path / "student"),
            "--repo-url",
            "https://github.com/o/r",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert release.returncode == 0 and (tmp_path / "student" / "notebooks" / NB).exists()
    again = subprocess.run(
        [sys.executable, "-m", "course_utils", "release", "--out", str(tmp_path / "student")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 2 and "is not empty" in again.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "course_utils",
            "grade",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "out2"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert missing.returncode == 2 and "is not a folder of student folders" in missing.stderr
    subs, out4 = str(tmp_path / "subs"), str(tmp_path / "o4")
    for bad, says in (
        (["--only", "42"], "--only 42 names no course notebook; give their numbers or names: 01_"),
        (["--wall", "-1"], "argument --wall: needs a number above 0; got '-1'"),
        (["--jobs", "0"], "argument --jobs: needs a number above 0; got '0'"),
        (["--call-limit", "nan"], "argument --call-limit: needs a number above 0; got 'nan'"),
    ):
        refused = subprocess.run(
            [sys.executable, "-m", "course_utils", "grade", subs, "--out", out4, *bad],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr
        assert not (tmp_path / "o4").exists()
    flat = tmp_path / "flat"  # the layout some learning platforms download: no student folders
    flat.mkdir()
    (flat / f"ada_{NB}").write_text(SOURCE.read_text())
    (flat / f"bob_{NB}").write_text(SOURCE.read_text())
    loose = subprocess.run(
        [sys.executable, "-m", "course_utils", "grade", str(flat), "--out", str(tmp_path / "o3")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert loose.returncode == 2
    assert "has no student folders (it holds 2 notebook file(s) directly)" in loose.stderr
    assert "SUBMISSIONS/<student>/<notebook>.ipynb" in loose.stderr
    assert not (tmp_path / "o3").exists()


def _session_leaders() -> list[str]:
    """Process ids of live (not zombie) sandbox-user processes that lead their own session."""
    ps = subprocess.run(["ps", "-eo", "uid,pid,sid,stat"], capture_output=True, text=True).stdout
    rows = [line.split() for line in ps.splitlines()[1:]]
    return [pid for uid, pid, sid, stat in rows
            if int(uid) >= FIRST_UID and pid == sid and not stat.startswith("Z")]  # fmt: skip


@pytest.mark.parametrize("stop", ["ctrl-c", "killed"])
def test_stopping_the_grader_writes_no_report_and_leaves_no_process(tmp_path, stop):
    import signal
    import time

    (tmp_path / "subs" / "hiding").mkdir(parents=True)
    hiding = _edit(  # leaves the grader's session and tries to outlive its parent
        "convolve-full",
        body=(
            "import ctypes, os, time\n"
            "def convolve(x, w):\n"
            "    os.setsid()\n"
            "    ctypes.CDLL(None).prctl(1, 0, 0, 0, 0)\n"
            "    while True:\n"
            "        time.sleep(3600)\n"
        ),
    )
    nbformat.write(hiding(_source_nb()), tmp_path / "subs" / "hiding" / NB)
    before = set(_session_leaders())
    grading = subprocess.Popen(
        [sys.executable, "-m", "course_utils", "grade", str(tmp_path / "subs"), "--out",
         str(tmp_path / "out"), "--jobs", "1", "--call-limit", "60", "--wall", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60  # until the student's code has called os.setsid()
    while time.monotonic() < deadline and grading.poll() is None:
        if set(_session_leaders()) - before:
            break  # inside the endless call
        time.sleep(0.2)
    else:
        pytest.fail("the submission's call never started: " + grading.communicate()[1][-2000:])
    grading.send_signal(signal.SIGINT if stop == "ctrl-c" else signal.SIGKILL)
    out, err = grading.communicate(timeout=60)
    if stop == "ctrl-c":
        assert grading.returncode == 130, err
        assert err.strip().splitlines() == [
            f"grading interrupted: no report was written to {tmp_path / 'out'}"
        ]
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.writing-*"))
    deadline = time.monotonic() + 10  # a killed grader's zygote notices the end of its input
    while True:  # a zombie (state Z) has exited: it runs nothing, and init reaps it in its time
        ps = subprocess.run(["ps", "-eo", "uid,stat,args"], capture_output=True, text=True).stdout
        alive = [
            line
            for line in ps.splitlines()[1:]
            if int(line.split()[0]) >= FIRST_UID and not line.split()[1].startswith("Z")
        ]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not alive, ps
