"""Comparing what a student's function returned with what is expected: arrays within a
tolerance (naming a common slip or float32 rounding), whole numbers, and slips that show only
across several cases. Every message is one line; the public checks and grading share them."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from typing import Any

from course_utils.checks import Mismatch, NotAttempted, call, short


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
            numbers_in = np.asarray(got)
        except (TypeError, ValueError, RuntimeError):
            numbers_in = None  # ragged, or not numbers
        if numbers_in is not None and numbers_in.dtype.kind in "biuf":  # not text read as numbers
            return numbers_in.astype(np.float64)
    if expected_shape == () and isinstance(got, numbers.Real) and not isinstance(got, bool):
        return np.asarray(got, dtype=np.float64)  # one number is asked for: a float will do
    wanted = (
        "a number"
        if expected_shape == ()
        else f"a NumPy array (or torch tensor) of shape {expected_shape}"
    )
    raise Mismatch(f"{what}: expected {wanted}; got {type(got).__name__}")


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
    where = "" if shown.startswith("at index") else f" at {index}"
    digits = next((d for d in (2, 3, 4) if f"{diff[index]:.{d}g}" != f"{allowed[index]:.{d}g}"), 17)
    raise Mismatch(
        f"{what}: {shown} (off by {diff[index]:.{digits}g}{where}, allowed "
        f"{allowed[index]:.{digits}g}){hint}"
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
    except Exception:  # noqa: BLE001 - a student's object may raise anything from __eq__
        return False


def is_whole_number(got: Any) -> bool:
    """Whether ``got`` is an ``int`` (NumPy's integers too), as the integer exercises ask."""
    import numbers

    return isinstance(got, numbers.Integral) and not isinstance(got, bool)


def expect_whole_number(got: Any, what: str) -> None:
    """A right value that is not an ``int`` (a float 5.0, a bool): one-line :class:`Mismatch`.
    Grading applies the same rule (``harnesses.graded_whole_number``)."""
    if not is_whole_number(got):
        raise Mismatch(
            f"{what}: the value is right but it is a {type(got).__name__}; return a whole "
            "number as an int (// divides and floors; int(...) converts)"
        )


def consistent_slip(
    fn: Any, name: str, cases: list[tuple], slips_for: Callable[..., Mapping[str, Any]]
) -> str:
    """The first explanation of ``slips_for(*case)`` (explanation -> the result that mistake
    gives on that case) whose results ``fn`` reproduces on every one of ``cases``, argument
    tuples; "" when none does. For checks with whole-number answers, where one case can match a
    slip by chance."""
    try:
        got = [call(fn, name, *args) for args in cases]
    except (Mismatch, NotAttempted):
        return ""
    per_case = [slips_for(*args) for args in cases]
    for explanation in per_case[0]:
        if all(equals(g, slips[explanation]) for g, slips in zip(got, per_case, strict=True)):
            return explanation
    return ""


def expect_counts(
    fn: Any,
    name: str,
    cases: list[tuple],
    expected_for: Callable[..., int],
    slips_for: Callable[..., Mapping[str, Any]],
    *,
    what: Callable[[tuple], str],
    reference: Callable[[int], str],
) -> None:
    """``fn(*case)`` against ``expected_for(*case)``, a whole number, on every case: a wrong value
    is a :class:`Mismatch` saying what ``reference`` gives and naming the slip of ``slips_for``
    that ``fn`` makes on every case; after all values are right, one that is not an int."""
    not_int = None
    for case in cases:
        expected = expected_for(*case)
        got = call(fn, name, *case)
        if not equals(got, expected):
            slip = consistent_slip(fn, name, cases, slips_for)
            raise Mismatch(
                f"{what(case)}: {reference(expected)}, got {short(got)}"
                + (f" ({slip})" if slip else "")
            )
        not_int = not_int or (None if is_whole_number(got) else (got, what(case)))
    if not_int:  # after all values: a wrong one says more than a type
        expect_whole_number(*not_int)


def expect_gradcheck(function: Any, inputs: tuple) -> None:
    """``torch.autograd.gradcheck`` of ``function`` (an autograd Function's ``apply`` whose
    backward calls the student's code) on float64 ``inputs``: a one-line :class:`Mismatch` when
    the gradients disagree with finite differences or autograd refuses them."""
    import torch

    try:
        agrees = torch.autograd.gradcheck(function, inputs, raise_exception=False)
    except (Mismatch, NotAttempted):
        raise
    except Exception as exc:  # e.g. autograd refusing a gradient of the wrong shape or dtype
        raise Mismatch(f"torch.autograd.gradcheck raised {type(exc).__name__}: {exc}") from None
    if not agrees:
        raise Mismatch("torch.autograd.gradcheck: your backward disagrees with finite differences")
