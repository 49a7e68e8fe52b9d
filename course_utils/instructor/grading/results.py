"""What grading produces: one row of grades.csv per submitted notebook, with its exercises. Kept
apart from scoring so that reading and writing reports never loads torch."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ExerciseResult:
    """Score and student-facing output of one exercise."""

    exercise_id: str
    score: float
    max_score: float
    output: str


@dataclass
class NotebookResult:
    """One row of grades.csv and its exercises."""

    student: str
    notebook: str
    score: float
    max_score: float
    status: str
    reason: str = ""
    exercises: list[ExerciseResult] = field(default_factory=list)
