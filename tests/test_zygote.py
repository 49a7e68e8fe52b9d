"""The zygote's side of grading: what it believes of the sandbox's reports, and what a sandbox
can find of earlier submissions in its own memory."""

import secrets

import numpy as np
import pytest

from course_utils.instructor.grading import wire
from course_utils.instructor.grading.sandbox import Job, Limits
from course_utils.instructor.grading.zygote import Progress, stage_order

JOB = {
    "helpers": ["import math"],
    "cells": [("a", "x = 1"), ("b", "y = 2")],
    "calls": [{"exercise": "a", "case": 0}, {"exercise": "a", "case": 1}],
}


def _run(progress, *frames):
    for frame in frames:
        progress.take(frame)
    return progress


def test_stages_are_believed_only_in_their_order():
    order = stage_order(JOB, skip={"cell:b"})
    assert order == ["setup", "helper:0", "cell:a", "call:a:0", "call:a:1"]
    progress = _run(
        Progress(order),
        {"t": "start", "stage": "wall"},  # not a stage: ignored
        {"t": "start", "stage": "setup"},
        {"t": "end", "stage": "setup", "ok": True},
        {"t": "start", "stage": "setup"},  # again, out of turn
        {"t": "end", "stage": "setup", "ok": False},
        {"t": "start", "stage": "cell:a"},  # helper:0 comes first
        {"t": "done"},  # before the last stage
    )
    assert progress.stages == {"setup": {"status": "ok", "error": ""}}
    assert progress.current is None and not progress.done


def test_results_are_taken_once_and_only_for_the_running_call():
    order = stage_order(JOB, skip=set())
    frames = [{"t": "start", "stage": name} for name in order[:4]]
    frames = [f for start in frames for f in (start, {"t": "end", "stage": start["stage"]})]
    value = wire.encode(np.ones(2))
    progress = _run(
        Progress(order),
        *frames,
        {"t": "start", "stage": "call:a:0"},
        {"t": "result", "stage": "call:a:1", "value": value},  # not the running call
        {"t": "result", "stage": "call:a:0", "value": value},
        {"t": "result", "stage": "call:a:0", "value": {"__npy__": "second"}},
        {"t": "end", "stage": "call:a:0", "ok": False, "error": "X\n# Grader notice"},
    )
    assert list(progress.results) == ["call:a:0"]
    assert progress.results["call:a:0"] == value
    assert progress.stages["call:a:0"] == {"status": "error", "error": "an exception"}


@pytest.mark.parametrize(
    "error, shown",
    [("ValueError", "ValueError"), ("Verdict:frozen", "Verdict:frozen"), ("a b", "an exception")],
)
def test_an_error_is_named_only_by_a_name(error, shown):
    progress = _run(
        Progress(["setup"]),
        {"t": "start", "stage": "setup"},
        {"t": "end", "stage": "setup", "ok": False, "error": error},
    )
    assert progress.stages["setup"]["error"] == shown


@pytest.mark.sandbox
def test_a_sandbox_finds_no_earlier_submission_in_its_memory():
    from course_utils.instructor.grading.pool import Zygote

    token = secrets.token_hex(20)
    earlier = f"secret = 'leak-{token}-leak' * 50\n"  # a long string, as a cell's source is
    scan = (
        "import ctypes, re\n"
        "def look():\n"
        "    pattern, found = re.compile(rb'leak-[0-9a-f]{40}-leak'), 0\n"
        "    for line in open('/proc/self/maps'):\n"
        "        parts = line.split()\n"
        "        if not parts[1].startswith('rw') or (len(parts) > 5 and parts[5] != '[heap]'):\n"
        "            continue\n"
        "        low, high = (int(v, 16) for v in parts[0].split('-'))\n"
        "        if high - low < 1 << 28:\n"
        "            found += len(pattern.findall(ctypes.string_at(low, high - low)))\n"
        "    return [found]\n"
    )
    calls = [{"exercise": "x", "name": "look", "case": 0, "args": [], "kwargs": {}}]
    zygote = Zygote(0)
    try:
        zygote.run(Job(earlier, [("x", earlier)], [], Limits()))
        reply = zygote.run(Job(scan, [], calls, Limits()))
    finally:
        zygote.close()
    assert reply["stages"]["call:x:0"]["status"] == "ok", reply
    assert wire.decode(reply["results"]["call:x:0"]).tolist() == [0.0]


def _stage_errors(job: dict) -> dict[str, str]:
    """Run ``job``'s stages in this process (no sandbox); each stage's error as reported."""
    import tempfile

    from course_utils.instructor.grading.sandbox import execute_stages

    job = {"setup": "import torch\nimport torch.nn.functional as F", "helpers": []} | job
    with tempfile.TemporaryFile() as out:
        execute_stages(job, set(), out.fileno())
        out.seek(0)
        frames = wire.FrameReader().feed(out.read())
    return {f["stage"]: f.get("error", "") for f in frames if f["t"] == "end"}


_IM2COL_STUB = (
    "def im2col(x, kh, kw, stride=1, padding=0):\n    raise NotImplementedError('yours')\n"
)
_CONV_BY_IM2COL = (
    "def conv2d_im2col(x, w, b=None, stride=1, padding=0):\n"
    "    columns = im2col(x, *w.shape[-2:], stride, padding)\n"
    "    return (w.flatten(1) @ columns).view(len(x), len(w), 3, 3)\n"
)


@pytest.mark.parametrize(
    ("cells", "error", "feedback"),
    [
        (
            [("im2col", _IM2COL_STUB), ("conv2d-im2col", _CONV_BY_IM2COL)],
            "Stub:im2col",
            "`conv2d_im2col` calls `im2col`, which still raises NotImplementedError: finish "
            "`im2col` first",
        ),
        (
            [
                (
                    "conv2d-im2col",
                    _CONV_BY_IM2COL.replace(
                        "im2col(x, *w.shape[-2:], stride, padding)",
                        "F.unfold(x, tuple(w.shape[-2:]))",
                    ),
                )
            ],
            "",  # F.unfold is allowed here, so the call runs (and returns the right values)
            None,
        ),
        (
            [
                (
                    "conv2d-im2col",
                    "def conv2d_im2col(x, w, b=None, stride=1, padding=0):\n"
                    "    return torch.nn.functional.conv2d(x, w, b, stride, padding)\n",
                )
            ],  # fmt: skip
            "RuledOut:convolution",
            "on a hidden case, your `conv2d_im2col` called a library convolution (`F.conv2d`",
        ),
        (
            [
                (
                    "conv2d-im2col",
                    "def conv2d_im2col(x, w, b=None, stride=1, padding=0):\n"
                    "    raise NotImplementedError\n",
                )
            ],  # fmt: skip
            "NotImplementedError",
            "not attempted",
        ),
    ],
)
def test_grading_names_a_stub_reached_and_a_call_ruled_out(cells, error, feedback):
    """The sandbox's report of one graded call, and the grader's words for it."""
    from course_utils.instructor.grading.hidden import hidden_tests
    from course_utils.instructor.grading.score import case_problem

    x, w = np.arange(50.0).reshape(1, 2, 5, 5), np.ones((3, 2, 3, 3))
    call = {"exercise": "conv2d-im2col", "name": "conv2d_im2col", "case": 0, "pick": None}
    call |= {"args": [x, w], "kwargs": {}, "as_torch": True, "rules_out": ["convolution"]}
    errors = _stage_errors({"cells": cells, "calls": [call]})
    assert errors["call:conv2d-im2col:0"] == error
    stage = {"status": "error" if error else "ok", "error": error}
    test = hidden_tests()["conv2d-im2col"]
    if feedback is None:
        return
    problem = case_problem(stage, None, call, test, Limits())
    assert problem.startswith(feedback), problem


def test_a_stopped_grader_starts_no_zygote_and_kills_one_started_meanwhile(monkeypatch, tmp_path):
    """After kill() (ctrl-c), a job whose zygote died is reported without a replacement; a
    replacement that was already starting when kill() came is killed as soon as it exists."""
    from course_utils.instructor import notebooks
    from course_utils.instructor.grading import pool
    from course_utils.instructor.grading.collect import source_notebooks

    events, started = [], []

    class FakeZygote:
        on_start = None

        def __init__(self, slot):
            self.slot = len(started)  # tells the zygotes apart (all run in slot 0 here)
            started.append(self)
            events.append(("start", self.slot))
            if FakeZygote.on_start:
                FakeZygote.on_start()

        def run(self, job):
            raise RuntimeError("the sandbox process died")

        def kill(self):
            events.append(("kill", self.slot))

        def close(self):
            events.append(("close", self.slot))

    monkeypatch.setattr(pool, "Zygote", FakeZygote)
    sources = source_notebooks()
    name = next(iter(sources))
    grader = pool.Grader(jobs=1)
    grader.pool.put(FakeZygote(0))
    grader.started.append(grader.pool.queue[0])
    path = tmp_path / name
    path.write_text(notebooks.notebook_paths()[0].read_text())

    row = grader.grade_file("ada", path, sources[name])  # running: the dead zygote is replaced
    assert row.status == "error" and events[-1][0] == "start"
    grader.kill()
    events.clear()
    row = grader.grade_file("bob", path, sources[name])  # stopped: no replacement
    assert row.status == "error" and not [e for e in events if e[0] == "start"], events

    grader.stopped.clear()  # running again; this time ctrl-c comes while the replacement starts
    FakeZygote.on_start = grader.kill
    events.clear()
    grader.grade_file("cy", path, sources[name])
    assert events[-1] == ("kill", len(started) - 1), "the replacement itself is killed"
