"""Which cells grading runs, and the names an exercise cell reads that none of them defines.

Grading runs the course's setup cell, the cells that only import modules or define functions
and classes, and the exercise cells; nothing else. The public check warns about such names while
the student can still fix them, and grading explains its NameError with the same function.
"""

from __future__ import annotations

import ast
import builtins
import threading

from course_utils.checks import exercise_id_of_source

_DEFINITIONS = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

#: Names the course's setup cells (each notebook's first code cell, which grading runs in place
#: of the student's copy) bind; a test keeps this equal to what the notebooks' cells bind.
SETUP_NAMES = frozenset(
    {"course_utils", "check", "config", "warnings", "time", "math", "plt", "np", "torch", "nn"}
    | {"F", "torchvision", "data", "viz", "widgets", "activation_speed", "datasets", "models"}
    | {"train", "DeviceLoader", "invariance", "invariance_nets", "pretrained", "visualise"}
    | {"N_TEST", "STEPS", "finetune", "transfer", "Budget", "Experiment"}
    | {"animations", "diagrams", "functools", "throughput"}
)
_PARSING = threading.Lock()


def parse(source: str) -> ast.Module:
    """``ast.parse``, one thread at a time: CPython 3.11's AST builder keeps one recursion counter
    for all threads, and the grader's threads parsing at once can fail with "SystemError: AST
    constructor recursion depth mismatch" (python/cpython issue 106905)."""
    with _PARSING:
        return ast.parse(source)


#: Names IPython adds to the builtins, which grading's plain Python lacks.
_IPYTHON_BUILTINS = frozenset({"display"})

#: The one line that states grading's rule, in check warnings and grading feedback.
RULE = (
    "grading runs only the course's setup cell, your cells that only import or define "
    "functions and classes, and the exercise cells"
)


def is_helper(body: list[ast.stmt]) -> bool:
    """Whether parsed top-level statements only import or define (a docstring aside)."""
    return bool(body) and all(
        isinstance(node, _DEFINITIONS)
        or isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        for node in body
    )


def graded_sources(sources: list[str]) -> list[str]:
    """Of the code cells ``sources``, those grading runs as they are: exercise cells and helper
    cells (grading runs the course's own setup cell, whose names are :data:`SETUP_NAMES`, not a
    student's edited copy)."""
    kept = []
    for src in sources:
        try:
            body = parse(src).body
        except SyntaxError:
            continue
        if exercise_id_of_source(src) or is_helper(body):
            kept.append(src)
    return kept


def undefined_names(
    exercise_source: str, run_sources: list[str], known: frozenset[str] = frozenset()
) -> list[str]:
    """Names the exercise cell reads that no source grading runs binds anywhere, and that are
    neither builtins nor ``known``: what a NameError most likely came from. Computed from the
    student's own code, so it reveals nothing hidden. Empty when unsure (a star import,
    unparsable code)."""
    bound = (set(dir(builtins)) - _IPYTHON_BUILTINS) | known
    try:
        trees = [parse(src) for src in [exercise_source, *run_sources]]
    except SyntaxError:
        return []
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                bound.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, ast.arg):
                bound.add(node.arg)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    if alias.name == "*":
                        return []
                    bound.add(alias.asname or alias.name.split(".")[0])
            elif isinstance(node, ast.ExceptHandler) and node.name:
                bound.add(node.name)
            elif isinstance(node, (ast.Global, ast.Nonlocal)):
                bound.update(node.names)
            elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
                bound.add(node.name)
    read = [
        node.id
        for node in ast.walk(trees[0])
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    ]
    return sorted(set(read) - bound)


def session_warning(exercise_source: str) -> str:
    """At check time in Jupyter: a note naming what the exercise cell reads that only cells
    grading does not run define (from this session's inputs); "" outside IPython or when none."""
    try:
        from IPython import get_ipython
    except ImportError:
        return ""
    shell = get_ipython()
    inputs = [s for s in (getattr(shell, "user_ns", {}).get("In") or []) if isinstance(s, str)]
    if not inputs:
        return ""
    missing = undefined_names(exercise_source, graded_sources(inputs), SETUP_NAMES)
    if not missing:
        return ""
    names = ", ".join(f"`{name}`" for name in missing[:3])
    if not set(missing) & _read_in_functions(exercise_source):  # a test line, say
        return (
            f"; ⚠ {RULE}, and none of them defines {names}: a line of the exercise cell that "
            "uses it fails in grading (the function itself still counts); move that line to a "
            "cell of its own"
        )
    return (
        f"; ⚠ grading will not find {names}: {RULE}, and none of them defines it; define it "
        "in the exercise cell"
    )


def _read_in_functions(source: str) -> set[str]:
    """Names read inside the function and class bodies of ``source``."""
    names: set[str] = set()
    for node in ast.walk(parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names |= {
                n.id
                for n in ast.walk(node)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
            }
    return names
