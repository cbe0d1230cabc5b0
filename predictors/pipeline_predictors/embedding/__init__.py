"""Sentence-embedding server (``python -m pipeline_predictors.embedding``)."""

from .model import SentenceEmbedder, mean_pool

__all__ = ["SentenceEmbedder", "mean_pool"]
