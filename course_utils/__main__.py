"""The course CLI: ``python -m course_utils doctor``, and in the course repository the
instructor's commands ``run | readme | strip | release | grade | gradescope``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: The instructor's commands, named here so that a student release can say where they are.
INSTRUCTOR_COMMANDS = ("run", "readme", "strip", "release", "grade", "gradescope", "gradescope-run")


def _cmd_doctor(args: argparse.Namespace) -> int:
    from course_utils import doctor

    return doctor.report()


def _has_instructor_tools() -> bool:
    """Whether this copy of the package has its instructor subpackage (the release has not)."""
    return (Path(__file__).resolve().parent / "instructor").is_dir()


def _belongs_to_the_repository(command: str) -> int:
    print(
        f"`python -m course_utils {command}` belongs to the course repository (the "
        "instructor's copy); this student release has only `python -m course_utils doctor`",
        file=sys.stderr,
    )
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m course_utils", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser(
        "doctor", help="check the installation, device, flags, data cache and network"
    )
    doctor.set_defaults(func=_cmd_doctor)
    if _has_instructor_tools():
        from course_utils.instructor import cli

        cli.add_commands(sub)
    else:  # the student release: listed in the help, answered in main()
        for name in INSTRUCTOR_COMMANDS:
            sub.add_parser(name, help="(in the course repository only)")
    return parser


def _print_what_the_stream_can(*streams) -> None:
    """Write '?' for a symbol such as ✓ or × that the stream's encoding lacks, instead of
    failing: output redirected to a file or pipe on Windows is cp1252 before Python 3.15."""
    for stream in streams:
        if hasattr(stream, "reconfigure") and stream.errors == "strict":
            stream.reconfigure(errors="replace")


def main(argv: list[str] | None = None) -> int:
    _print_what_the_stream_can(sys.stdout, sys.stderr)
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in INSTRUCTOR_COMMANDS and not _has_instructor_tools():
        return _belongs_to_the_repository(argv[0])
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
