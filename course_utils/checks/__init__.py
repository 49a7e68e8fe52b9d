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

import contextvars
import copy
import sys
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
    """A registered exercise: the names it reads from the notebook, its public check and the
    codes of the library calls its text rules out (:mod:`course_utils.checks.ruled_out`)."""

    id: str
    names: tuple[str, ...]
    run: Callable[..., str]
    rules_out: tuple[str, ...] = ()


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


_NOT_ATTEMPTED_YET = "not attempted yet"


def not_attempted_line(exercise_id: str) -> str:
    """How the ⏳ line that ``check`` prints for an exercise still unattempted begins."""
    return CheckResult(exercise_id, NOT_ATTEMPTED, _NOT_ATTEMPTED_YET).line()


_REGISTRY = Registry(__name__, __path__, "exercise id")


def exercise(
    exercise_id: str, *names: str, rules_out: tuple[str, ...] = ()
) -> Callable[[Callable[..., str]], Callable[..., str]]:
    """Register a public check that receives the notebook objects ``names`` and returns a summary;
    a call to what ``rules_out`` names, during any student call of the check, fails it."""

    def register(run: Callable[..., str]) -> Callable[..., str]:
        _REGISTRY.add(exercise_id, Exercise(exercise_id, names, run, rules_out))
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
    watched = _RULED_OUT.set(ex.rules_out)
    try:
        summary = ex.run(*(namespace[name] for name in ex.names))
    except NotAttempted as exc:
        return CheckResult(exercise_id, NOT_ATTEMPTED, f"{_NOT_ATTEMPTED_YET} ({exc})")
    except Mismatch as exc:
        return CheckResult(exercise_id, FAILED, str(exc) + _notes(ex, namespace))
    except Exception as exc:  # noqa: BLE001 - reading an odd return value (a shape that raises)
        names = ", ".join(f"`{name}`" for name in ex.names)
        return CheckResult(
            exercise_id,
            FAILED,
            f"what {names} returned could not be checked ({type(exc).__name__}: {_text(exc)}); "
            "return plain torch tensors, lists and numbers, as the exercise asks",
        )
    finally:
        _RULED_OUT.reset(watched)
    return CheckResult(exercise_id, PASSED, summary + _notes(ex, namespace))


def _notes(ex: Exercise, namespace: Mapping[str, Any]) -> str:
    """What grading will see differently: the checked function last defined in a cell that is
    not its exercise cell (grading takes the exercise cell's version), or an exercise cell that
    reads a name only cells grading does not run define.

    Jupyter keeps each cell's source in ``linecache`` under the file name its functions carry;
    where it does not (plain Python), there is nothing to say.
    """
    import inspect
    import linecache

    from course_utils.checks.graded_cells import session_warning

    for name in ex.names:
        value = namespace[name]
        code = getattr(inspect.unwrap(value), "__code__", None) if callable(value) else None
        if code is None or getattr(value, "__module__", None) != "__main__":
            continue  # not a function defined in the notebook (a library function, a class)
        source = "".join(linecache.getlines(code.co_filename))
        if source and exercise_id_of_source(source) != ex.id:
            return (
                f"; note: this `{name}` comes from a cell other than its `# EXERCISE: {ex.id}` "
                "cell, and grading uses the exercise cell's version"
            )
        if source:
            return session_warning(source)
    return ""


def check(exercise_id: str, namespace: Mapping[str, Any]) -> CheckResult:
    """Print the result line of :func:`run_check`; raise :class:`CheckFailed` in strict mode."""
    try:
        result = run_check(exercise_id, namespace)
    except KeyError as exc:  # an id that is not an exercise: the line says which ones are
        result = CheckResult(str(exercise_id), FAILED, str(exc.args[0]))
    print(result.line())
    if not result.passed and flag("COURSE_CHECK_STRICT"):
        raise CheckFailed(result.line())
    return result


# ---- helpers for the check modules -------------------------------------------------------

#: The rules of the exercise being checked, watched during every student call.
_RULED_OUT: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "ruled_out", default=()
)


def stub_reached(exc: BaseException, fn: Any) -> str | None:
    """For a NotImplementedError from the student's ``fn``: None when ``fn`` itself raised it
    (not attempted), the name of the other notebook function that raised it (a stub ``fn``
    calls), or "" when a library raised it (an error like any other)."""
    import inspect

    frame = None
    tb = exc.__traceback__
    while tb is not None:
        frame, tb = tb.tb_frame, tb.tb_next
    own = getattr(inspect.unwrap(fn), "__code__", None)  # through @torch.no_grad() and the like
    if frame is None or frame.f_code is own:
        return None
    if frame.f_globals.get("__name__") == "__main__":
        return frame.f_code.co_name
    return ""


def stub_message(name: str, stub: str) -> str:
    """The line for a complete ``name`` stopped by an unfinished ``stub`` it calls."""
    return f"`{name}` calls `{stub}`, which still raises NotImplementedError: finish `{stub}` first"


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
    from course_utils.checks import ruled_out

    if not callable(fn):
        raise Mismatch(f"`{name}` should be a function; got {type(fn).__name__}")
    if ruled_out.is_course_code(fn):  # the course's reference imported as the answer
        raise Mismatch(ruled_out.message("course-code", name))
    grad_mode = _grad_mode()
    try:
        with ruled_out.watch(_RULED_OUT.get(), (*args, *kwargs.values())) as seen:
            got = fn(*args, **kwargs)
    except NotImplementedError as exc:
        stub = stub_reached(exc, fn)
        if stub is None:
            raise NotAttempted(f"`{name}` still raises NotImplementedError") from None
        if stub:
            exercises = {n for ex in registry().values() for n in ex.names}
            where = " (its exercise is above)" if stub in exercises else ""
            raise Mismatch(stub_message(name, stub) + where) from None
        raise Mismatch(
            f"{name}({describe_call(args, kwargs, fn)}) raised NotImplementedError: {_text(exc)}"
        ) from None
    except (Exception, SystemExit) as exc:  # the student's code may raise anything: one line
        inputs = describe_call(args, kwargs, fn)
        raise Mismatch(f"{name}({inputs}) raised {type(exc).__name__}: {_text(exc)}") from None
    finally:
        left_off = _restore_grad_mode(grad_mode)
    if left_off:
        raise Mismatch(
            f"`{name}` switched gradients off for the rest of the session "
            "(torch.set_grad_enabled(False)); use `with torch.no_grad():`, which switches them "
            "back on at its end"
        )
    if seen:
        raise Mismatch(ruled_out.message(seen[0], name))
    if got is None:
        raise Mismatch(
            f"{name}({describe_call(args, kwargs, fn)}) returned None: does `{name}` end with "
            "`return <result>`?"
        )
    return got


def _grad_mode() -> bool | None:
    """Whether torch records gradients now (None when torch is not imported)."""
    torch = sys.modules.get("torch")
    return None if torch is None else torch.is_grad_enabled()


def _restore_grad_mode(before: bool | None) -> bool:
    """Put back the grad mode ``before`` a student's call; whether the call had switched it off."""
    torch = sys.modules.get("torch")
    if before is None or torch is None or torch.is_grad_enabled() == before:
        return False
    torch.set_grad_enabled(before)
    return before


def _text(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when the exception cannot be shown (its __str__ raises)."""
    try:
        return str(exc)
    except Exception:  # noqa: BLE001 - a student's exception class may break anything
        return "(an exception that cannot be shown as text)"


def _private_copy(value: Any) -> Any:
    """A copy of an argument that the student's code may change freely."""
    if hasattr(value, "detach") and hasattr(value, "clone"):
        return value.detach().clone()
    return copy.deepcopy(value)


def describe_call(args: tuple, kwargs: dict, fn: Any = None) -> str:
    """A short, readable rendering of call arguments for messages: small values in full, a
    larger array by its parameter's name (from ``fn``'s signature) and shape, ``x (1, 1, 5, 5)``."""
    import inspect

    try:
        names = list(inspect.signature(fn).parameters)[: len(args)] if fn else []
    except (TypeError, ValueError):  # a builtin or a callable without a signature
        names = []
    names += [""] * (len(args) - len(names))
    parts = [_argument(name, value, keyword=False) for name, value in zip(names, args, strict=True)]
    parts += [_argument(name, value, keyword=True) for name, value in kwargs.items()]
    return ", ".join(parts)


def _argument(name: str, value: Any, *, keyword: bool) -> str:
    text = short(value)
    if text.startswith("array (") and name:
        return f"{name} {text.removeprefix('array ')}"
    return f"{name}={text}" if keyword else text


def short(value: Any) -> str:
    """``value`` for a one-line message: small arrays and tensors in full, larger ones by shape."""
    import numpy as np

    if hasattr(value, "detach") and hasattr(value, "cpu"):
        from course_utils.checks.compare import tensor_to_numpy

        value = tensor_to_numpy(value)
    if callable(value) and not isinstance(value, type):  # its repr shows the check's internals
        return f"a {type(value).__name__} network" if hasattr(value, "parameters") else "a function"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        if value.size <= 8:
            return np.array2string(value, precision=3, separator=", ").replace("\n", "")
        return f"array {tuple(value.shape)}"
    try:
        text = " ".join(repr(value).split())
    except Exception:  # noqa: BLE001 - a student's object may raise anything from __repr__
        text = f"a {type(value).__name__} that cannot be shown"
    return text if len(text) <= 80 else text[:77] + "..."
