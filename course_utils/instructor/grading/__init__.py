"""Batch grading of untrusted notebooks.

- :mod:`.submission` reads a submitted notebook defensively and finds its exercise cells.
- :mod:`.sandbox` runs one submission's cells in a locked-down child process.
- :mod:`.grade` grades a folder of submissions and writes the reports.
- :mod:`.hidden` holds the hidden test cases.
"""
