"""Ensemble aggregator server (``python -m pipeline_predictors.aggregator``)."""

from .model import EnsembleAggregator, aggregate, member_scores

__all__ = ["EnsembleAggregator", "aggregate", "member_scores"]
