"""Helper package for the CNN lecture notebooks.

Importing this package does nothing but define names: no seeding, no plotting, no
downloads, and none of torch, torchvision or scikit-learn is imported. Call
:func:`setup` at the top of a notebook to seed, pick the device and set the plot style,
and :func:`check` after an exercise cell to get feedback on it.
"""

__version__ = "0.1.0"
__all__ = ["__version__", "check", "headline", "setup"]


def setup(*, seed: int = 0, quiet: bool = False):
    """Seed, choose the device, set threads and plot style; print one line. See :mod:`course_utils.env`."""
    from course_utils.env import setup as _setup

    return _setup(seed=seed, quiet=quiet)


def check(exercise_id: str) -> None:
    """Run the public checks of ``exercise_id`` on the object defined in the notebook. See :mod:`course_utils.checks`."""
    import sys

    from course_utils.checks import check as _check

    _check(exercise_id, namespace=sys._getframe(1).f_globals)


#: How :func:`headline` marks its line; ``course_utils.instructor.runner`` looks for it.
HEADLINE_PREFIX = "Headline: "


def headline(text: str) -> None:
    """Print the notebook's headline result (one line); ``python -m course_utils run`` shows it in
    its table."""
    print(HEADLINE_PREFIX + " ".join(str(text).split()))
