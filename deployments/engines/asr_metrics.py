"""Word error rate, for judging transcripts against references (the ASR tests and
benchmarks/asr_window.py share it, so their figures compare)."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["normalise_words", "word_edits", "word_error_rate"]

_SPOKEN = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


def normalise_words(text: str) -> list[str]:
    """Lower case, punctuation dropped (hyphens split words), titles as spoken."""
    words = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()
    return [_SPOKEN.get(w, w) for w in words]


def word_edits(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Substitutions + deletions + insertions turning `reference` into `hypothesis`."""
    row = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hypothesis, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def word_error_rate(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    return word_edits(reference, hypothesis) / max(len(reference), 1)
