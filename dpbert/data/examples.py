"""One example of a task, whatever its source (GLUE TSV files, the hub, the synthetic generator)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One (pair of) sentence(s) with its label.

    ``label`` is an int class id (float score for STS-B); unlabelled test rows carry -1
    (nan for STS-B). ``kind`` is set by synthetic data only ("easy:..." / "hard:...").
    """

    guid: str
    text_a: str
    text_b: str | None
    label: float | int
    kind: str = ""
