"""The runtimes an encoder predictor runs its model on: ONNX Runtime or torch."""
