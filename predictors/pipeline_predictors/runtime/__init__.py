"""The runtimes an encoder predictor runs its model on: ONNX Runtime (an ONNX export, no torch)
or torch, the protocol both answer to, and the options they take."""
