"""inference-pipelines: deploy multi-stage inference pipelines on KServe, roll them out whole."""
