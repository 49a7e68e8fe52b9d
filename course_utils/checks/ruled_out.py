"""What an exercise's text rules out (a library convolution in the convolution exercises, say),
and how a call to it is seen while the student's function runs.

Each rule names the library functions it covers. Torch's are seen by a
:class:`~torch.overrides.TorchFunctionMode`, which every torch function passes through, so
``F.conv2d``, ``nn.Conv2d`` (which calls it), ``torch.conv2d`` and ``torch.ops.aten.convolution``
are all seen (a tensor method of the same name, such as ``Tensor.unfold``, is not one of them);
NumPy's and SciPy's functions are seen by a profile hook, however they were imported. The same
hook sees the student's code call the course's own (``course_utils``: its library and its checks'
reference answers), which every exercise rules out, and :func:`is_course_code` refuses an answer
that *is* the course's code (a reference imported under the answer's name). A course network
built outside the student's function and called inside it runs through torch and is not seen.
The public checks and grading (a private copy of this module, loaded before any student code)
watch the same rules.

This catches a careless call, not a determined one: code in the same process can switch the
watch off. Grading's other protections do not depend on it.
"""

from __future__ import annotations

import contextlib
import sys
from typing import NamedTuple


class Rule(NamedTuple):
    """Library calls an exercise rules out: ``label`` as the text names them, the names of the
    torch functions (``torch``) and NumPy/SciPy functions (``python``, as (top-level package,
    name)) that implement them, ``course`` whether it is the course's own code, and ``fix``, what
    to do instead. A named tuple: grading loads a private copy of this module outside
    ``sys.modules``, where a dataclass cannot be made."""

    label: str
    fix: str
    torch: frozenset[str] = frozenset()
    python: frozenset[tuple[str, str]] = frozenset()
    course: bool = False


_CONVOLUTIONS = frozenset(
    {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}
    | {"convolution", "_convolution", "conv_tbc", "_conv_depthwise2d", "mkldnn_convolution"}
    | {"thnn_conv2d", "_slow_conv2d_forward", "slow_conv3d", "slow_conv_dilated2d"}
    | {"slow_conv_dilated3d", "cudnn_convolution", "miopen_convolution"}
)
_MAX_POOLS = frozenset(
    f"{kind}max_pool{d}d{suffix}"
    for kind in ("", "adaptive_", "fractional_")
    for d in (1, 2, 3)
    for suffix in ("", "_with_indices")
)
_SCIPY_CONVOLUTIONS = ("convolve", "correlate", "fftconvolve", "oaconvolve", "convolve2d")
_SCIPY_CONVOLUTIONS += ("correlate2d", "convolve1d", "correlate1d")

#: Every rule, by the code an exercise declares (and grading reports).
RULES = {
    "convolution": Rule(
        "a library convolution (`F.conv2d`, `nn.Conv2d`, `torch.conv2d`, SciPy's or another)",
        "compute each output value from its patch and the kernel yourself",
        torch=_CONVOLUTIONS,
        python=frozenset(("scipy", name) for name in _SCIPY_CONVOLUTIONS),
    ),
    "numpy-convolution": Rule(
        "a library convolution (`np.convolve`, `np.correlate`, SciPy's or torch's)",
        "write the two loops of the formula yourself",
        torch=_CONVOLUTIONS,
        python=frozenset({("numpy", "correlate"), ("numpy", "correlate2")})
        | {("scipy", name) for name in _SCIPY_CONVOLUTIONS},
    ),
    "unfold": Rule(
        "`F.unfold` (or `nn.Unfold`), the library's im2col",
        "cut the patches out with slicing, one kernel offset at a time",
        torch=frozenset({"unfold", "im2col"}),
    ),
    "max-pool": Rule(
        "a library max pooling (`F.max_pool2d`, `nn.MaxPool2d` or another)",
        "take each window's maximum and its position yourself",
        torch=_MAX_POOLS,
    ),
    "autograd": Rule(
        "autograd (`.backward()`, `torch.autograd.grad` or `torch.nn.grad`)",
        "compute the gradients from dout with the three products of the text",
        torch=frozenset({"backward", "grad", "convolution_backward"}),
    ),
    "pixel-shuffle": Rule(
        "`F.pixel_unshuffle` (or `nn.PixelUnshuffle`), the library's space-to-depth",
        "move the pixels with view and permute yourself",
        torch=frozenset({"pixel_unshuffle", "pixel_shuffle"}),
    ),
    "course-code": Rule(
        "the course's own code (`course_utils`, whose library and checks hold the answers)",
        "write the steps yourself with torch, as the exercise asks",
        course=True,
    ),
}
#: The rules every exercise watches, whatever it declares.
ALWAYS = ("course-code",)


class RuledOut(Exception):
    """The student's function called what rule ``code`` rules out."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def message(code: str, name: str) -> str:
    """The one line that reports a call ruled out by ``code`` in the student's ``name``."""
    rule = RULES[code]
    return f"your `{name}` called {rule.label}, which this exercise rules out: {rule.fix}"


@contextlib.contextmanager
def watch(codes: tuple[str, ...], passed: tuple = ()):
    """Within the block, record which of the rules ``codes`` (and :data:`ALWAYS`) a call breaks;
    yields the list of codes seen (filled in as calls happen, each code once). ``passed`` are the
    arguments the student's function was given: calling them (a unit function the check passes,
    a method of an object it passes) is not a call to the course's code."""
    seen: list[str] = []
    rules = [(code, RULES[code]) for code in dict.fromkeys((*codes, *ALWAYS))]

    def note(code: str) -> None:
        if code not in seen:
            seen.append(code)

    torch_names = {name: code for code, rule in rules for name in rule.torch}
    python = {key: code for code, rule in rules for key in rule.python}
    course = next((code for code, rule in rules if rule.course), None)
    with contextlib.ExitStack() as stack:
        if torch_names:
            stack.enter_context(_torch_watch(torch_names, note))
        stack.enter_context(_profile_watch(python, note, course, _code_of(passed)))
        yield seen


def _code_of(passed: tuple) -> set:
    """The code objects of the callables in ``passed`` (and in lists of them) and of the methods
    of their classes, and of the classes of every module inside a passed network."""
    codes, values = set(), list(passed)
    while values:
        value = values.pop()
        if isinstance(value, (list, tuple)):
            values.extend(value)
            continue
        function = getattr(value, "func", getattr(value, "__func__", value))  # partial, method
        if hasattr(function, "__code__"):
            codes.add(function.__code__)
        modules = getattr(value, "modules", None)  # a network: the layers inside it too
        owners = (
            {type(m) for m in modules()}
            if callable(modules) and hasattr(value, "forward")
            else set()
        )
        for klass in {klass for owner in owners | {type(value)} for klass in owner.__mro__}:
            for member in vars(klass).values():
                member = getattr(member, "__func__", getattr(member, "fget", member))
                if hasattr(member, "__code__"):
                    codes.add(member.__code__)
    return codes


def is_course_code(fn) -> bool:
    """Whether the answer ``fn`` itself is the course's code (a reference function imported as
    the answer, a partial of one, an instance of a course class)."""
    import inspect

    while True:
        inner = getattr(fn, "func", None) or getattr(fn, "__func__", None)  # partial, method
        if inner is None or inner is fn:
            break
        fn = inner
    try:
        fn = inspect.unwrap(fn)
    except ValueError:  # a cycle of __wrapped__
        return False
    module = getattr(fn, "__module__", None) if callable(fn) and hasattr(fn, "__code__") else None
    module = module or getattr(type(fn), "__module__", None)
    return isinstance(module, str) and module.split(".")[0] == "course_utils"


@contextlib.contextmanager
def _torch_watch(names: dict[str, str], note):
    """A torch function of one of ``names`` from a torch module (not a tensor method)."""
    from torch.overrides import TorchFunctionMode

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            module = getattr(func, "__module__", None) or ""
            if (
                module.split(".")[0] == "torch"
            ):  # an operator overload is named "convolution.default"
                code = names.get(str(getattr(func, "__name__", "")).split(".")[0])
                if code is not None:
                    note(code)
            return func(*args, **(kwargs or {}))

    with Watch():
        yield


@contextlib.contextmanager
def _profile_watch(python: dict[tuple[str, str], str], note, course: str | None, allowed: set):
    """A profile hook: a C function (NumPy's) is matched by its module and name, a Python
    function (SciPy's) by its module's top-level package and its name; with ``course``, a
    function of ``course_utils`` called straight from the student's code (``__main__``), unless
    its code is in ``allowed``."""

    def hook(frame, event, arg):
        if event == "c_call":
            module = getattr(arg, "__module__", None)  # a module object in some C extensions
            module = module.split(".")[0] if isinstance(module, str) else ""
            code = python.get((module, getattr(arg, "__name__", "")))
        elif event == "call":
            name = str(frame.f_globals.get("__name__", ""))
            module = name.split(".")[0]
            code = python.get((module, frame.f_code.co_name))
            # not the torch watch (which sees the student's calls), nor grading's own stand-ins
            ours = frame.f_globals is globals() or name.startswith("course_utils.instructor")
            if code is None and course and module == "course_utils" and not ours:
                caller = frame.f_back
                if (
                    caller is not None
                    and caller.f_globals.get("__name__") == "__main__"
                    and frame.f_code not in allowed
                ):
                    code = course
        else:
            return
        if code is not None:
            note(code)

    previous = sys.getprofile()
    if previous is not None:  # a profiler (%prun) is running: watching would stop it
        yield
        return
    sys.setprofile(hook)
    try:
        yield
    finally:
        sys.setprofile(previous)
