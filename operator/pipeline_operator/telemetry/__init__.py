"""The operator's own metrics and traces."""
