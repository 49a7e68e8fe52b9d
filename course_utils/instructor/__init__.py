"""The instructor's side of the course, never in the student release: notebook tooling
(:mod:`.notebooks`), the notebook runner (:mod:`.runner`), the release (:mod:`.release`), batch
grading (:mod:`.grading`) and the Gradescope autograder (:mod:`.gradescope`), and their commands
(:mod:`.cli`). It imports the student-facing package; nothing there imports it.
"""
