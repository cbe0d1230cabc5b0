"""The pipeline on Ray Serve: tokenizer and classifier, two deployments composed with a
DeploymentHandle, behind Ray's HTTP proxy (``python bench/peers/ray_serve.py --model_dir DIR
--port PORT``).

As Ray Serve's docs build a model composition: the ingress deployment (``Tokenizer``) takes the
HTTP request, tokenizes, and awaits the ``Classifier`` deployment through its handle; the
classifier batches with ``@serve.batch`` (32 requests, 5 ms: the kit's own batching settings),
and each deployment's ``max_ongoing_requests`` is above its batch size, as the docs advise for
batching. One replica each (the default), one torch thread in the classifier (Ray's own default
for a 1-CPU replica). Per-request access log lines are off, as the kit's are by default; the
dashboard is not started. The answer is the kit transformer's v1 answer: ``{"predictions":
[{"label", "score", "labels", "scores"}]}``. The process runs until it is killed.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request

BATCH = 32
WINDOW_S = 0.005


@serve.deployment(max_ongoing_requests=2 * BATCH)
class Classifier:
    def __init__(self, model_dir: str) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification

        torch.set_num_threads(1)
        self.torch = torch
        self.model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, local_files_only=True
        ).eval()

    @serve.batch(max_batch_size=BATCH, batch_wait_timeout_s=WINDOW_S)
    async def __call__(self, batch: list[list[list[int]]]) -> list[Any]:
        rows = [row for ids in batch for row in ids]
        width = max(len(r) for r in rows)
        ids = self.torch.tensor([r + [0] * (width - len(r)) for r in rows])
        mask = self.torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        with self.torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float().numpy()
        out, start = [], 0
        for request in batch:
            out.append(logits[start : start + len(request)])
            start += len(request)
        return out


@serve.deployment(max_ongoing_requests=2 * BATCH)
class Tokenizer:
    def __init__(self, model_dir: str, classifier: DeploymentHandle) -> None:
        from transformers import AutoConfig, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.classifier = classifier

    async def __call__(self, request: Request) -> dict[str, Any]:
        texts = (await request.json())["instances"]
        ids = self.tokenizer(list(texts))["input_ids"]
        logits = await self.classifier.remote(ids)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        best = probabilities.argmax(axis=1)
        return {
            "predictions": [
                {
                    "label": self.labels[b],
                    "score": float(p[b]),
                    "labels": [self.labels[b]],
                    "scores": [float(p[b])],
                }
                for b, p in zip(best, probabilities, strict=True)
            ]
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    import ray

    ray.init(include_dashboard=False)
    quiet = {"enable_access_log": False}
    serve.start(http_options={"host": "127.0.0.1", "port": args.port}, logging_config=quiet)
    app = Tokenizer.bind(args.model_dir, Classifier.bind(args.model_dir))
    serve.run(app, name="pipeline", route_prefix="/", logging_config=quiet)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
