"""Sequence classifier server (``python -m pipeline_predictors.classifier``)."""

from .model import SequenceClassifier

__all__ = ["SequenceClassifier"]
