"""The classifier as an MLServer custom runtime (``implementation: mlserver_runtime.Classifier``).

Written as MLServer's docs write one: ``load`` reads the model directory of the
``parameters.uri`` setting (the benchmark's BERT, from disk), ``predict`` decodes the BYTES
``text`` input, tokenizes, runs the model and answers ``logits``, ``probabilities`` (FP32
``[n, labels]``) and ``label`` (BYTES ``[n]``), the outputs of the kit's predictor. MLServer's
adaptive batching (``max_batch_size``, ``max_batch_time``) merges requests before ``predict``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse
from transformers import AutoModelForSequenceClassification, AutoTokenizer


class Classifier(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        torch.set_num_threads(1)
        uri = self.settings.parameters.uri
        self.tokenizer = AutoTokenizer.from_pretrained(uri, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            uri, local_files_only=True
        ).eval()
        config = self.model.config
        self.labels = np.array([config.id2label[i] for i in range(config.num_labels)])
        return True

    def _forward(self, texts: list[str]) -> Any:
        enc = self.tokenizer(texts, padding=True, return_tensors="pt")
        with torch.inference_mode():
            return self.model(**enc).logits.float().numpy()

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        texts = StringCodec.decode_input(payload.inputs[0])
        logits = await asyncio.get_running_loop().run_in_executor(None, self._forward, texts)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        labels = self.labels[probabilities.argmax(axis=1)].tolist()
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output("logits", logits),
                NumpyCodec.encode_output("probabilities", probabilities.astype(np.float32)),
                StringCodec.encode_output("label", labels),
            ],
        )
