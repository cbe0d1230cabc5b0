"""What can go wrong in an evaluation, each failure a message fit to be shown as it is."""

from __future__ import annotations

from typing import Any


class EvaluationError(Exception):
    """An evaluation that could not be carried out (exit code 2): its message names what went
    wrong; ``details`` are more fields of the error report (short values only)."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {key: value for key, value in details.items() if value is not None}


class UsageError(EvaluationError):
    """A flag or environment variable that is missing or malformed."""


class LabelledSetError(EvaluationError):
    """The labelled set cannot be read, or one of its lines is not a sample."""


class RequestError(EvaluationError):
    """A request to a revision got no usable HTTP answer (after its retries)."""


class AnswerError(EvaluationError):
    """A revision answered, but no predicted label can be read from the answer."""
