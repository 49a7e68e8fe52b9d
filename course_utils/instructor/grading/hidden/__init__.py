"""Hidden tests: instructor side only. Never copied into the student release, never readable
by a submission's process (the sandbox covers this folder while student code runs).

Each ``course_utils/instructor/grading/hidden/<topic>.py`` registers, per exercise, its points, a
generator of inputs the student has not seen, and how to compute the expected output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from course_utils.checks.compare import matching_slip, tensor_to_numpy
from course_utils.registry import Registry

#: Folder the sandbox hides from student code.
HIDDEN_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class HiddenTest:
    """Points and hidden cases of one exercise; ``cases(rng)`` yields ``(args, kwargs)``."""

    exercise_id: str
    points: float
    cases: Callable[[np.random.Generator], list[tuple[tuple, dict]]]
    expected: Callable[..., np.ndarray]
    atol: float = 1e-6
    rtol: float = 1e-5
    picks: tuple = (None,)
    as_torch: bool = False
    harness: str | None = None
    slips: Callable[..., Mapping[str, object]] | None = None

    def expected_for(self, call: dict) -> np.ndarray:
        """The expected array for one call (``call["pick"]`` selects from a tuple result)."""
        return _picked(self.expected(*call["args"], **call["kwargs"]), call)

    def slip_for(self, call: dict, got: np.ndarray) -> str | None:
        """The explanation of the common mistake (from ``slips``, which takes the arguments of
        ``expected``) whose result ``got`` equals on this call; None when there is none."""
        if self.slips is None:
            return None
        slips = self.slips(*call["args"], **call["kwargs"])
        picked = {explanation: _picked(wrong, call) for explanation, wrong in slips.items()}
        return matching_slip(got, picked, atol=self.atol, rtol=self.rtol)


def _picked(value, call: dict) -> np.ndarray:
    """``value`` (an array, a tensor, or a tuple of them picked by ``call["pick"]``) as float64."""
    if call.get("pick") is not None:
        value = value[call["pick"]]
    if hasattr(value, "detach"):
        value = tensor_to_numpy(value)
    return np.asarray(value, dtype=np.float64)


_TESTS = Registry(__name__, __path__, "hidden test")


def hidden(exercise_id: str, *, points: float, expected: Callable[..., np.ndarray], **options):
    """Register the decorated case generator as the hidden test of ``exercise_id``.

    ``options``: ``atol``, ``rtol``; ``picks`` (indices into a tuple result, each graded as a
    case); ``as_torch`` (inputs reach the student's function as tensors); ``harness`` (the
    name of a function of ``course_utils.checks.harnesses``, called in the sandbox as
    ``harness(student_fn, *args, **kwargs)``: it builds what plain numbers cannot carry, such as
    a network, calls the student's function and returns plain numbers); ``slips`` (the public
    check's function giving, for the same arguments, what each common mistake returns, so that
    feedback names the mistake).
    """

    def register(cases):
        _TESTS.add(exercise_id, HiddenTest(exercise_id, points, cases, expected, **options))
        return cases

    return register


def hidden_tests() -> dict[str, HiddenTest]:
    """Every hidden test, importing each module of this package once."""
    return _TESTS.load()
