"""Print the pip constraints file (exact versions) for the Python running this script.

The newest releases of several dependencies need Python 3.11 (NumPy 2.3+, IPython 9,
contourpy 1.3.3), and soupsieve's need 3.11.5, so Python 3.10 up to 3.11.4 have a lock of their
own; 3.11.5 and newer share one. The
Makefile asks this script, run by the interpreter of `.venv` (or the one that will create it).
Keep it runnable on old Pythons: an interpreter older than 3.10 must get as far as the
Makefile's "Python 3.10 or newer is needed".
"""

import sys


def constraints_file(version_info):
    """``requirements/constraints*.txt`` for a ``sys.version_info``-like (major, minor, micro,
    ...); without a micro version, the newest of that minor version is meant."""
    version = (tuple(version_info[:3]) + (99,))[:3]
    if version < (3, 11, 5):
        return "requirements/constraints-py310.txt"
    return "requirements/constraints.txt"


if __name__ == "__main__":
    print(constraints_file(sys.version_info))
