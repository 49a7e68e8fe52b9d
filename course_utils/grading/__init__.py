"""The instructor side: the student release and safe batch grading.

- :mod:`.release` builds the student version (solutions stubbed, hidden tests left out).
- :mod:`.submission` reads a submitted notebook defensively and finds its exercise cells.
- :mod:`.sandbox` runs one submission's cells in a locked-down child process.
- :mod:`.grade` grades a folder of submissions and writes the reports.
- :mod:`.gradescope` packs the same grader as a Gradescope autograder.
- :mod:`.hidden` (instructor only, never released) holds the hidden test cases.
"""
