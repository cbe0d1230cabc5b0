"""Tokenizer transformer server (``python -m pipeline_transformers.tokenizer``)."""

from .model import TokenizerTransformer

__all__ = ["TokenizerTransformer"]
