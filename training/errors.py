"""Typed errors the training commands report as one line (exit status 2): the input was
wrong, not the code. Kept import-light so the CLI can catch them without loading torch."""

from __future__ import annotations

from training.models.registry import ModelNotFoundError

__all__ = ["USER_ERRORS", "TrainingInputError"]


class TrainingInputError(ValueError):
    """A training or evaluation request is unusable; the message says what and where."""


#: exceptions that mean "the user asked for something impossible" (status 2, one line);
#: every data-file error (`IntentDataError` ...) is a `TrainingInputError`
USER_ERRORS: tuple[type[BaseException], ...] = (TrainingInputError, ModelNotFoundError)
