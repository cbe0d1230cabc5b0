"""Retrieval of the documents nearest to query embeddings (``python -m ...retriever``)."""
