"""Scoring: the hidden calls for a notebook, and what came back from the sandbox compared with
expected values computed here, after the student's process has ended. Feedback names what went
wrong without showing hidden inputs, expected values or solution text."""

from __future__ import annotations

import numpy as np

from course_utils.checks import registry, ruled_out, stub_message
from course_utils.checks.compare import SINGLE_PRECISION, rounding_only
from course_utils.checks.graded_cells import RULE, undefined_names
from course_utils.checks.harnesses import VERDICTS
from course_utils.instructor.grading import submission, wire
from course_utils.instructor.grading.collect import SourceNotebook
from course_utils.instructor.grading.hidden import HiddenTest, hidden_tests
from course_utils.instructor.grading.results import ExerciseResult
from course_utils.instructor.grading.sandbox import Limits, call_stage


def hidden_calls(source: SourceNotebook) -> tuple[list[dict], dict[str, HiddenTest]]:
    tests = hidden_tests()
    names = registry()
    calls = []
    for exercise_id in source.exercise_ids:
        test = tests[exercise_id]
        rng = np.random.default_rng(case_seed(exercise_id))
        variants = [(a, k, pick) for a, k in test.cases(rng) for pick in test.picks]
        for case, (args, kwargs, pick) in enumerate(variants):
            calls.append(
                {
                    "exercise": exercise_id,
                    "name": names[exercise_id].names[0],
                    "case": case,
                    "args": list(args),
                    "kwargs": kwargs,
                    "pick": pick,
                    "as_torch": test.as_torch,
                    "harness": test.harness,
                    "rules_out": list(names[exercise_id].rules_out),
                }
            )
    return calls, tests


def case_seed(exercise_id: str) -> int:
    """A stable seed per exercise (Python's hash() is salted per process)."""
    return int.from_bytes(exercise_id.encode()[:8].ljust(8, b"\0"), "little") % 2**32


_CELL_PROBLEMS = {
    "timeout": "the exercise cell ran past the time limit and was stopped",
    "crashed": "the exercise cell crashed the Python process (for example os._exit or a segfault)",
}


def case_problem(
    stage: dict | None, value, call: dict, test: HiddenTest, limits: Limits
) -> str | None:
    """None if the case passed, else a short reason that reveals nothing hidden."""
    if stage is None:
        return "not run: an earlier step of this exercise was stopped"
    status = stage["status"]
    if status == "timeout":
        return f"a call ran longer than {limits.call:g} s and was stopped"
    if status == "crashed":
        return "a call crashed the Python process"
    if status == "error":
        error = stage.get("error", "")
        if error == "NotImplementedError":
            return "not attempted"
        if error == "LookupError":
            return "the exercise cell does not define the function"
        if error == "ReturnedNone":
            return "a call returned None: does the function end with `return <result>`?"
        if error.startswith("RuledOut:"):  # worded from the grader's own table
            code = error.removeprefix("RuledOut:")
            if code in ruled_out.RULES:
                return f"on a hidden case, {ruled_out.message(code, call['name'])}"
            return "a call broke a rule of the exercise"
        if error.startswith("Stub:"):
            return stub_message(call["name"], error.removeprefix("Stub:"))
        if error == "LibraryNotImplementedError":
            return "a call raised NotImplementedError inside a library function"
        if error.startswith("Verdict:"):  # worded from the grader's own table
            meaning = VERDICTS.get(error.removeprefix("Verdict:"))
            return (
                f"on a hidden case, {meaning}" if meaning else "a call broke a rule of the exercise"
            )
        return f"a call raised {error}"
    not_numbers = "a call returned something that is not an array of numbers"
    if value is None:  # the sandbox sends no result for a value that holds no numbers
        return not_numbers
    try:
        got = wire.decode(value)
    except Exception:  # noqa: BLE001 - whatever the sandbox sent, it is not a result
        return not_numbers
    if not isinstance(got, np.ndarray) or got.dtype.kind not in "fiu":
        return not_numbers
    expected = test.expected_for(call)
    if got.dtype.kind in "iu":  # the sandbox keeps an integer dtype: it can explain a truncation
        if not np.array_equal(expected, np.round(expected)):
            return (
                "wrong values on a hidden case: the result has an integer dtype where the "
                "expected values are not whole numbers (did an integer array truncate them?)"
            )
        got = got.astype(np.float64)
    if got.shape != expected.shape:
        slip = test.slip_for(call, got)  # a known slip may change the shape (an extra layer)
        if slip or test.harness:  # a harness's numbers describe the answer; their count varies
            return (
                f"wrong values on a hidden case: {slip}"
                if slip
                else "wrong values on a hidden case"
            )
        return "wrong output shape on a hidden case"
    if not np.allclose(got, expected, atol=test.atol, rtol=test.rtol):
        whole = np.array_equal(expected, np.round(expected))  # counts: rounding is no excuse
        if not whole and rounding_only(got, expected):
            return f"wrong values on a hidden case: {SINGLE_PRECISION}"
        slip = test.slip_for(call, got)
        return f"wrong values on a hidden case: {slip}" if slip else "wrong values on a hidden case"
    return None


def _name_error(exercise_source: str, run_sources: list[str]) -> str:
    """Explain a NameError: grading runs only some cells, and names what the exercise cell
    reads that none of them defines."""
    missing = undefined_names(exercise_source, run_sources)
    what = f" (`{'`, `'.join(missing[:3])}` is defined in none of them)" if missing else ""
    return f"a call raised NameError: {RULE}{what}; define what your function uses in its exercise cell"


def score(
    source: SourceNotebook,
    submitted: submission.Submitted,
    reply: dict,
    calls: list[dict],
    tests: dict[str, HiddenTest],
    limits: Limits,
) -> list[ExerciseResult]:
    """Compare what came back from the sandbox with expected values computed here."""
    stages, values = reply["stages"], reply["results"]
    cells, names = submitted.cells, registry()
    results = []
    for exercise_id in source.exercise_ids:
        test = tests[exercise_id]
        if exercise_id not in cells:
            output = (
                f"no cell starting with `# EXERCISE: {exercise_id}` (was it deleted or edited?)"
            )
            results.append(ExerciseResult(exercise_id, 0.0, test.points, output))
            continue
        cell = stages.get(f"cell:{exercise_id}", {})
        mine = [c for c in calls if c["exercise"] == exercise_id]
        problems = []
        for call in mine:
            name = call_stage(call)
            problems.append(case_problem(stages.get(name), values.get(name), call, test, limits))
        passed = sum(p is None for p in problems)
        points = round(test.points * passed / len(mine), 2)
        if cell.get("status") in _CELL_PROBLEMS:
            output = _CELL_PROBLEMS[cell["status"]]
        elif passed == len(mine):
            output = f"passed all {len(mine)} hidden cases"
        else:
            first = next(p for p in problems if p is not None)
            if first == "a call raised NameError":
                run = [source.setup, *submitted.helpers, *cells.values()]
                first = _name_error(cells[exercise_id], run)
            output = f"passed {passed} of {len(mine)} hidden cases; {first}"
            if cell.get("status") == "error":
                output += f" (the exercise cell raised {cell.get('error')})"
            function = names[exercise_id].names[0]
            if function in submitted.defined_elsewhere:
                output += (
                    f"; `{function}` is also defined in a cell outside its exercise cell, and only "
                    "the exercise cell's version is graded"
                )
        if exercise_id in submitted.repeated:
            output += "; the exercise cell appears more than once, the last one was graded"
        results.append(ExerciseResult(exercise_id, points, test.points, output))
    return results
