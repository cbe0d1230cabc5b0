"""Reference predictors of the data plane: KServe model servers.

- ``pipeline_predictors.classifier``: a Hugging Face sequence classifier on torch, with dynamic
  batching, v1 and v2 endpoints;
- ``pipeline_predictors.embedding``: mean-pooled sentence embeddings;
- ``pipeline_predictors.aggregator``: combines the responses of an InferenceGraph Ensemble node.

Each runs with ``python -m pipeline_predictors.<server> --help``. This package imports neither
torch nor transformers; the servers that need them do.
"""
