"""The instructor's commands of the course CLI: ``run | readme | strip | release | grade |
gradescope``. They work in the course repository; the student release leaves them out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: The commands this module adds (``course_utils.__main__`` names them in a release too).
COMMANDS = ("run", "readme", "strip", "release", "grade", "gradescope", "gradescope-run")


def _cmd_run(args: argparse.Namespace) -> int:
    from course_utils.env import check_settings, is_fast, is_offline
    from course_utils.instructor import notebooks, runner

    found = notebooks.notebook_paths(args.notebooks_dir)
    paths = (
        [p for p in found if p.name[:2] in args.only or p.stem in args.only] if args.only else found
    )
    if not paths:
        where = args.notebooks_dir or notebooks.notebooks_dir()
        choices = f"; --only takes their numbers or names: {', '.join(p.stem for p in found)}"
        print(
            f"no notebooks matched in {where}" + (choices if found else ""),
            file=sys.stderr,
        )
        return 2
    if args.out.exists() and not args.out.is_dir():
        print(
            f"--out {args.out} is a file; name a folder for the executed notebooks", file=sys.stderr
        )
        return 2
    try:  # a misspelt setting would stop every notebook at its setup cell: say it once instead
        check_settings()
    except ValueError as exc:
        print(f"no notebook was run: {exc}", file=sys.stderr)
        return 2
    fast, offline = args.fast or is_fast(), args.offline or is_offline()
    print(
        f"executing {len(paths)} notebook(s) into {args.out}; "
        f"{'fast' if fast else 'full'} mode; "
        + (
            "offline: stand-in datasets"
            if offline
            else "online: real datasets, stand-ins if a download fails"
        )
    )
    results = runner.run_all(
        paths, args.out, cell_timeout=args.cell_timeout, fast=args.fast, offline=args.offline
    )
    print(runner.format_table(results))
    return 0 if all(r.status == "ok" for r in results) else 1


def _cmd_readme(args: argparse.Namespace) -> int:
    from course_utils.instructor import notebooks

    try:
        text = args.readme.read_text(encoding="utf-8")
        updated = notebooks.render_readme(text, notebooks.readme_table(args.notebooks_dir))
    except OSError as exc:
        print(
            f"{args.readme}: cannot be read ({exc.strerror}); pass --readme PATH", file=sys.stderr
        )
        return 2
    except ValueError as exc:  # no table markers, or an unreadable notebook
        print(f"{args.readme}: {exc}", file=sys.stderr)
        return 2
    if updated == text:
        print(f"{args.readme}: notebook table is up to date")
        return 0
    if args.check:
        print(
            f"{args.readme}: notebook table is stale; run `python -m course_utils readme`",
            file=sys.stderr,
        )
        return 1
    args.readme.write_text(updated, encoding="utf-8")
    print(f"{args.readme}: notebook table rewritten")
    return 0


def _cmd_strip(args: argparse.Namespace) -> int:
    import nbformat

    from course_utils.instructor import notebooks

    unreadable = 0
    for path in args.paths or notebooks.notebook_paths():
        try:
            nb = notebooks.read(path)
        except ValueError as exc:  # says which file and why; the others are still stripped
            print(exc, file=sys.stderr)
            unreadable += 1
            continue
        nbformat.write(notebooks.strip(nb), path)
        print(f"stripped {path}")
    return 1 if unreadable else 0


def _cmd_release(args: argparse.Namespace) -> int:
    from course_utils.env import repo_root
    from course_utils.instructor.release import build_release, repo_url_from_pyproject

    root = repo_root()
    repo_url = args.repo_url or (repo_url_from_pyproject(root) if root else "")
    if not repo_url:
        print(
            "no repository URL: pass --repo-url or set [tool.course] repo_url in pyproject.toml",
            file=sys.stderr,
        )
        return 2
    try:
        written = build_release(args.out, repo_url=repo_url, branch=args.branch)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"release not built: {exc}", file=sys.stderr)
        return 2
    print(
        f"student release of {len(written)} notebook(s) in {args.out} (Colab installs from {repo_url}@{args.branch})"
    )
    return 0


def _cmd_gradescope(args: argparse.Namespace) -> int:
    from course_utils.env import repo_root
    from course_utils.instructor.gradescope import build_bundle

    root = repo_root()
    if root is None:
        print(
            "the bundle is built from the course repository (an editable install)", file=sys.stderr
        )
        return 2
    try:
        path, chosen = build_bundle(args.out, root, only=args.only, replace=args.replace)
    except (ValueError, FileExistsError) as exc:
        print(f"no autograder written: {exc}", file=sys.stderr)
        return 2
    print(f"Gradescope autograder for {', '.join(chosen)} written to {path}")
    return 0


def _cmd_gradescope_run(args: argparse.Namespace) -> int:
    from course_utils.instructor.gradescope import run_autograder

    results = run_autograder(args.root)  # writes results.json whatever happens
    print(
        f"score {results['score']:g}"
        + (f": {results['output']}" if not results.get("tests") else "")
    )
    return 0


def _limits(args: argparse.Namespace):
    from course_utils.instructor.grading.sandbox import Limits

    return Limits(wall=args.wall, cell=args.cell_limit, call=args.call_limit)


def _cmd_grade(args: argparse.Namespace) -> int:
    from course_utils.instructor.grading.grade import grade_folder
    from course_utils.instructor.grading.reports import stale_reports
    from course_utils.instructor.grading.sandbox import SandboxUnavailable

    try:
        rows = grade_folder(
            args.submissions,
            args.out,
            jobs=args.jobs,
            limits=_limits(args),
            only=args.only,
            replace=args.replace,
            progress=sys.stderr.isatty(),
        )
    except (SandboxUnavailable, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"grading stopped before anyone was scored: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"grading interrupted: no report was written to {args.out}", file=sys.stderr)
        return 130
    for row in rows:
        print(
            f"{row.student:<24} {row.notebook:<28} {row.score:>6g} / {row.max_score:<4g} {row.status:<9} {row.reason}"
        )
    print(
        f"graded {len(rows)} notebook(s); reports in {args.out}: grades.csv, exercises.csv, "
        "summary.md (per exercise, for the class) and <student>/feedback.md"
    )
    stale = stale_reports(rows, args.out)
    if stale:
        print(
            f"note: {args.out} still holds an earlier run's reports for {len(stale)} student(s) "
            f"not graded now and not in grades.csv: {', '.join(stale)}; they were left as they "
            "were (delete those folders before uploading the reports)"
        )
    return 0


def _positive(kind: type):
    """An argparse type: a finite number of ``kind`` (int or float) above zero."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"needs a number above 0; got {text!r}")
        return value

    return parse


def _add_limit_options(parser: argparse.ArgumentParser) -> None:
    seconds = _positive(float)
    parser.add_argument("--wall", type=seconds, default=120.0, help="seconds for one submission")
    parser.add_argument(
        "--cell-limit", type=seconds, default=20.0, help="seconds for one exercise cell"
    )
    parser.add_argument(
        "--call-limit", type=seconds, default=10.0, help="seconds for one graded call"
    )


def add_commands(sub) -> None:
    """Add the instructor's commands to the CLI's subparsers."""

    run = sub.add_parser("run", help="execute every notebook headless and print a table of results")
    run.add_argument(
        "--out", type=Path, default=Path("build/executed"), help="where executed copies go"
    )
    run.add_argument(
        "--notebooks-dir", type=Path, default=None, help="default: the repository's notebooks/"
    )
    run.add_argument(
        "--only", nargs="+", metavar="NN", help="run only these notebooks (number or stem)"
    )
    run.add_argument("--fast", action="store_true", help="tiny configuration (sets COURSE_FAST=1)")
    run.add_argument(
        "--offline", action="store_true", help="use stand-in datasets (sets COURSE_OFFLINE=1)"
    )
    run.add_argument(
        "--cell-timeout", type=_positive(int), default=1800, help="seconds one cell may run"
    )
    run.set_defaults(func=_cmd_run)

    readme = sub.add_parser(
        "readme", help="rebuild the README's notebook table from the notebook titles"
    )
    readme.add_argument("--readme", type=Path, default=Path("README.md"))
    readme.add_argument("--notebooks-dir", type=Path, default=None)
    readme.add_argument("--check", action="store_true", help="fail instead of rewriting when stale")
    readme.set_defaults(func=_cmd_readme)

    release = sub.add_parser(
        "release", help="build the student version (no solutions, no hidden tests)"
    )
    release.add_argument(
        "--out", type=Path, required=True, help="a new, empty folder outside the repository"
    )
    release.add_argument(
        "--repo-url", default="", help="default: [tool.course] repo_url in pyproject.toml"
    )
    release.add_argument(
        "--branch", default="main", help="branch the Colab badge and install cell use"
    )
    release.set_defaults(func=_cmd_release)

    grade = sub.add_parser("grade", help="grade SUBMISSIONS/<student>/<notebook>.ipynb into OUT")
    grade.add_argument("submissions", type=Path)
    grade.add_argument("--out", type=Path, required=True)
    grade.add_argument(
        "--jobs", type=_positive(int), default=2, help="submissions graded in parallel"
    )
    grade.add_argument(
        "--only", nargs="+", metavar="NN", help="grade only these notebooks (numbers or names)"
    )
    grade.add_argument(
        "--replace",
        action="store_true",
        help="write over the reports in an --out that is not empty (grades.csv is replaced, "
        "not merged: with --only it then lists only those notebooks)",
    )
    _add_limit_options(grade)
    grade.set_defaults(func=_cmd_grade)

    gradescope = sub.add_parser(
        "gradescope", help="build a Gradescope autograder zip (setup.sh, run_autograder)"
    )
    gradescope.add_argument("--out", type=Path, required=True)
    gradescope.add_argument(
        "--only", nargs="+", metavar="NN", help="the assignment's notebooks (numbers or names)"
    )
    gradescope.add_argument("--replace", action="store_true", help="write over an existing zip")
    gradescope.set_defaults(func=_cmd_gradescope)

    gradescope_run = sub.add_parser(
        "gradescope-run", help="(used by run_autograder) grade ROOT/submission"
    )
    gradescope_run.add_argument("root", type=Path)
    gradescope_run.set_defaults(func=_cmd_gradescope_run)

    strip = sub.add_parser(
        "strip", help="strip outputs (nbstripout), keeping those of NBVAL_CHECK_OUTPUT cells"
    )
    strip.add_argument("paths", nargs="*", type=Path, help="default: every notebook")
    strip.set_defaults(func=_cmd_strip)
