"""Public exercise checks: ``check("exercise-id")`` in a notebook.

An exercise cell starts with ``# EXERCISE: <id>`` and defines a name (usually a
function). The cell after it calls ``check("<id>")``, which looks the name up in the
notebook, runs the public cases registered for that id and prints one line:

- ✅ every case passed;
- ❌ the first failing case: its input, what was expected, what came back, the tolerance; or,
  where the result is what a common mistake gives (a flipped kernel, a missing bias), that
  mistake and its fix;
- ⏳ not attempted yet: the function still raises ``NotImplementedError``.

Expected values are computed on the fly with NumPy or torch, never copied from a solution.
With ``COURSE_CHECK_STRICT=1`` (the test suite) ❌ and ⏳ raise :class:`CheckFailed`, so a
broken solution notebook fails its run; students never see a traceback from a check.

Each ``course_utils/checks/<topic>.py`` module registers its exercises with
:func:`exercise`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from course_utils.env import flag
from course_utils.registry import Registry

EXERCISE_MARKER = "# EXERCISE:"
PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
_SYMBOL = {PASSED: "✅", FAILED: "❌", NOT_ATTEMPTED: "⏳"}


class CheckFailed(AssertionError):
    """Raised by :func:`check` in strict mode when an exercise is wrong or unattempted."""


class NotAttempted(Exception):
    """The student's code still raises ``NotImplementedError``."""


class Mismatch(Exception):
    """A public case failed; the message is the one line shown to the student."""


@dataclass(frozen=True)
class Exercise:
    """A registered exercise: the names it reads from the notebook and its public check."""

    id: str
    names: tuple[str, ...]
    run: Callable[..., str]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one :func:`run_check`."""

    exercise_id: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def line(self) -> str:
        return f"{_SYMBOL[self.status]} {self.exercise_id}: {self.message}"


_REGISTRY = Registry(__name__, __path__, "exercise id")


def exercise(exercise_id: str, *names: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Register a public check that receives the notebook objects ``names`` and returns a summary."""

    def register(run: Callable[..., str]) -> Callable[..., str]:
        _REGISTRY.add(exercise_id, Exercise(exercise_id, names, run))
        return run

    return register


def exercise_id_of_source(src: str) -> str | None:
    """The id after ``# EXERCISE:`` on the first line of a code cell's source, else None."""
    first = src.lstrip().splitlines()[:1]
    if first and first[0].startswith(EXERCISE_MARKER):
        return first[0][len(EXERCISE_MARKER) :].strip()
    return None


def registry() -> dict[str, Exercise]:
    """All registered exercises, importing every check module of this package once."""
    return _REGISTRY.load()


def run_check(exercise_id: str, namespace: Mapping[str, Any]) -> CheckResult:
    """Run the public checks of ``exercise_id`` against the objects in ``namespace``."""
    exercises = registry()
    if exercise_id not in exercises:
        known = ", ".join(sorted(exercises))
        raise KeyError(f"unknown exercise id {exercise_id!r}; known ids: {known}")
    ex = exercises[exercise_id]
    missing = [name for name in ex.names if name not in namespace]
    if missing:
        names = ", ".join(f"`{name}`" for name in missing)
        return CheckResult(
            exercise_id,
            FAILED,
            f"{names} is not defined: run the exercise cell above, then this one",
        )
    try:
        summary = ex.run(*(namespace[name] for name in ex.names))
    except NotAttempted as exc:
        return CheckResult(exercise_id, NOT_ATTEMPTED, f"not attempted yet ({exc})")
    except Mismatch as exc:
        return CheckResult(exercise_id, FAILED, str(exc) + _defined_elsewhere(ex, namespace))
    return CheckResult(exercise_id, PASSED, summary + _defined_elsewhere(ex, namespace))


def _defined_elsewhere(ex: Exercise, namespace: Mapping[str, Any]) -> str:
    """A note when the checked function was last defined in a cell that is not its exercise
    cell (a fixed version in a new cell below): grading takes the exercise cell's version.

    Jupyter keeps each cell's source in ``linecache`` under the file name its functions carry;
    where it does not (plain Python), there is nothing to say.
    """
    import linecache

    for name in ex.names:
        value = namespace[name]
        code = getattr(value, "__code__", None)
        if code is None or getattr(value, "__module__", None) != "__main__":
            continue  # not a function defined in the notebook (a library function, a class)
        lines = linecache.getlines(code.co_filename)
        if lines and exercise_id_of_source("".join(lines)) != ex.id:
            return (
                f"; note: this `{name}` comes from a cell other than its `# EXERCISE: {ex.id}` "
                "cell, and grading uses the exercise cell's version"
            )
    return ""


def check(exercise_id: str, namespace: Mapping[str, Any]) -> CheckResult:
    """Print the result line of :func:`run_check`; raise :class:`CheckFailed` in strict mode."""
    result = run_check(exercise_id, namespace)
    print(result.line())
    if not result.passed and flag("COURSE_CHECK_STRICT"):
        raise CheckFailed(result.line())
    return result


# ---- helpers for the check modules -------------------------------------------------------


def call(fn: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call the student's ``fn`` on private copies of the arguments; turn
    ``NotImplementedError`` into :class:`NotAttempted`, and any other exception or a return
    value of None (a missing ``return``) into a one-line :class:`Mismatch`.

    The copies keep a function that changes its inputs in place (``x -= x.mean()``) from
    changing the check's own inputs, and so the expected values computed from them.
    """
    args, kwargs = tuple(map(_private_copy, args)), {k: _private_copy(v) for k, v in kwargs.items()}
    return call_shared(fn, name, *args, **kwargs)


def call_shared(fn: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """:func:`call` without the copies, for exercises whose answer is about the very objects
    passed (which parameters of *this* network train); the check builds fresh ones per call."""
    if not callable(fn):
        raise Mismatch(f"`{name}` should be a function; got {type(fn).__name__}")
    try:
        got = fn(*args, **kwargs)
    except NotImplementedError:
        raise NotAttempted(f"`{name}` still raises NotImplementedError") from None
    except Exception as exc:  # the student's code may raise anything; report it in one line
        inputs = describe_call(args, kwargs)
        raise Mismatch(f"{name}({inputs}) raised {type(exc).__name__}: {exc}") from None
    if got is None:
        raise Mismatch(
            f"{name}({describe_call(args, kwargs)}) returned None: does `{name}` end with "
            "`return <result>`?"
        )
    return got


def _private_copy(value: Any) -> Any:
    """A copy of an argument that the student's code may change freely."""
    if hasattr(value, "detach") and hasattr(value, "clone"):
        return value.detach().clone()
    return copy.deepcopy(value)


def describe_call(args: tuple, kwargs: dict) -> str:
    """A short, readable rendering of call arguments for messages."""
    parts = [short(a) for a in args] + [f"{k}={short(v)}" for k, v in kwargs.items()]
    return ", ".join(parts)


def short(value: Any) -> str:
    """``value`` for a one-line message: small arrays and tensors in full, larger ones by shape."""
    import numpy as np

    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = tensor_to_numpy(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return np.array2string(value, precision=3, separator=", ").replace("\n", "")
        return f"<array shape {tuple(value.shape)}>"
    text = " ".join(repr(value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def float64_tensor(value: Any):
    """``value`` (a NumPy array, a tensor, numbers) as a float64 torch tensor, the dtype the
    checks and the grader compute expected values in."""
    import torch

    return torch.as_tensor(value, dtype=torch.float64)


def tensor_to_numpy(tensor: Any):
    """A torch tensor as a NumPy array; bfloat16 (which NumPy lacks) becomes float32."""
    import torch

    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.numpy()


def as_array(got: Any, what: str, expected_shape: tuple[int, ...]):
    """``got`` as a NumPy array, accepting NumPy arrays, torch tensors and (nested) lists or tuples
    of numbers, which are read as floats as grading reads them; else :class:`Mismatch`."""
    import numpy as np

    if hasattr(got, "detach") and hasattr(got, "cpu"):
        try:
            got = tensor_to_numpy(got)
        except (RuntimeError, TypeError, NotImplementedError) as exc:  # meta, sparse, ...
            raise Mismatch(f"{what}: the tensor returned cannot be read ({exc}); return a "
                           "plain dense tensor on the CPU or GPU") from None  # fmt: skip
    if isinstance(got, np.ndarray):
        return np.array(got, subok=False)  # a subclass cannot answer the comparisons itself
    if isinstance(got, (list, tuple)):
        try:
            return np.asarray(got, dtype=np.float64)
        except (TypeError, ValueError):
            pass  # ragged, or not numbers
    raise Mismatch(
        f"{what}: expected a NumPy array (or torch tensor) of shape {expected_shape}; "
        f"got {type(got).__name__}"
    )


def expect_array(
    got: Any,
    expected: Any,
    *,
    what: str,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    slips: Mapping[str, Any] | None = None,
) -> None:
    """Compare an array result with the expected one; raise a one-line :class:`Mismatch`.

    ``what`` names the call, e.g. ``"conv_matrix(w=[1, 2, 3], n=5)"``. ``slips`` maps the
    explanation of a common mistake (what it is and how to fix it) to the result that mistake
    gives; a wrong result equal to one is reported by its explanation.
    """
    import numpy as np

    expected = np.asarray(expected)
    got_dtype = str(getattr(got, "dtype", "")).removeprefix("torch.")
    got = as_array(got, what, tuple(expected.shape))
    if got.shape != expected.shape:
        raise Mismatch(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    if got.dtype.kind not in "fiu":
        raise Mismatch(f"{what}: expected a real-valued numeric array, got dtype {got.dtype}")
    if got.dtype.kind in "iu" and not np.array_equal(expected, np.round(expected)):
        raise Mismatch(
            f"{what}: expected floating-point values, got integer dtype {got.dtype} "
            "(did an integer array truncate the result?)"
        )
    got = got.astype(np.float64)
    if not np.all(np.isfinite(got)):
        raise Mismatch(f"{what}: the result contains NaN or inf")
    if np.allclose(got, expected, atol=atol, rtol=rtol):
        return
    slip = matching_slip(got, slips or {}, atol=atol, rtol=rtol)
    if slip:
        raise Mismatch(f"{what}: {slip}")
    diff = np.abs(got - expected)
    allowed = atol + rtol * np.abs(expected)  # np.allclose's test, element by element
    excess = np.divide(diff, allowed, out=np.where(diff > 0, np.inf, 0.0), where=allowed > 0)
    index = tuple(int(i) for i in np.unravel_index(np.argmax(excess), diff.shape))
    if expected.size <= 12 and short(expected) != short(got):
        shown = f"expected {short(expected)}, got {short(got)}"
    else:  # enough digits to see the difference
        digits = 4 if f"{expected[index]:.4g}" != f"{got[index]:.4g}" else 10
        shown = (
            f"at index {index} expected {expected[index]:.{digits}g}, got {got[index]:.{digits}g}"
        )
    hint = ""
    if got_dtype in ("float32", "float16", "bfloat16") and rounding_only(
        got, expected
    ):  # a float32 answer far off is told what is wrong, not this
        hint = f"; {SINGLE_PRECISION}"
    raise Mismatch(
        f"{what}: {shown} (worst at {index}: |diff| {diff[index]:.3g} > atol + rtol * |expected| "
        f"= {atol:g} + {rtol:g} * {abs(expected[index]):.3g}; max |diff| {diff.max():.3g}){hint}"
    )


def matching_slip(got, slips: Mapping[str, Any], *, atol: float, rtol: float) -> str | None:
    """The first explanation in ``slips`` (explanation -> the result of that common mistake)
    whose result has ``got``'s shape and equals it within the tolerances; None when none does.
    The public checks and the grader use it alike."""
    import numpy as np

    for explanation, slip in slips.items():
        wrong = np.asarray(slip, dtype=np.float64)
        if wrong.shape == got.shape and np.allclose(got, wrong, atol=atol, rtol=rtol):
            return explanation
    return None


SINGLE_PRECISION = (
    "this is single-precision rounding: the inputs are float64, so keep every intermediate "
    "float64 (torch.zeros and torch.tensor make float32 unless given dtype=)"
)


def rounding_only(got, expected) -> bool:
    """Whether two same-shape float arrays differ by no more than float32 rounding would
    (relative to the largest expected value, at least 1)."""
    import numpy as np

    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    return bool(np.abs(got - expected).max(initial=0.0) <= 1e-5 * scale)


def equals(got: Any, expected: Any) -> bool:
    """``got == expected`` for plain values; an array or tensor of several values is not equal.

    A bare ``got != expected`` raises when a student returns a multi-element array, which
    would show them a traceback from the check instead of a ❌ line.
    """
    try:
        return bool(got == expected)
    except (ValueError, RuntimeError, TypeError):
        return False


def consistent_slip(fn: Any, name: str, cases: list[tuple], slips: Mapping[str, list]) -> str:
    """The first explanation in ``slips`` (explanation -> the result that mistake gives on each
    of ``cases``, argument tuples) whose results ``fn`` reproduces on every case; "" when none
    does. For checks with whole-number answers, where one case can match a slip by chance."""
    try:
        got = [call(fn, name, *args) for args in cases]
    except (Mismatch, NotAttempted):
        return ""
    for explanation, results in slips.items():
        if all(equals(g, r) for g, r in zip(got, results, strict=True)):
            return explanation
    return ""
