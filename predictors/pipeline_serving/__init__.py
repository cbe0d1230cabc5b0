"""What every data-plane stage shares: the open inference protocol's payload codecs, metrics
and traces, and the model server's command line and start-up (predictors and transformers
alike; no torch)."""
