"""What the real-container tier sends the sentiment models: the corpus and mixed texts, and a
set of them labelled by a model, as the ConfigMap the evaluation Job mounts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.dataplane.harness import Baseline
from tests.harness import Cluster
from tests.harness.models import CORPUS

TEXTS = [*CORPUS, *(f"{a} but {b}" for a in CORPUS[:4] for b in CORPUS[8:])]
"""Short and long texts (a model that takes at most 16 tokens refuses the long ones)."""
EVALUATION_IMAGE = "ghcr.io/inference-pipelines/evaluation:0.1.0"
LABELLED = "sentiment-labelled"
"""The ConfigMap of the labelled set (its key ``set.jsonl``)."""


def job_report(message: str) -> dict[str, Any]:
    """The evaluation Job's report in a measurement's message (the end of its log): the last
    JSON line. The log merges the container's stdout and stderr, so a progress line may land
    after the report (the last line on stdout)."""
    log = message.rsplit("log: ", 1)[1]
    lines = [line for line in log.splitlines() if line.startswith("{")]
    assert lines, f"no JSON report in the Job's log: {log!r}"
    return dict(json.loads(lines[-1]))


def labelled_set(cluster: Cluster, namespace: str, model: Path) -> None:
    """:data:`TEXTS` labelled by ``model`` (computed here, not asked of the cluster), as the
    ConfigMap :data:`LABELLED`."""
    labels = [label for label, _ in Baseline(model).top1(TEXTS)]
    lines = [json.dumps({"input": t, "label": y}) for t, y in zip(TEXTS, labels, strict=True)]
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": LABELLED, "namespace": namespace},
        "data": {"set.jsonl": "\n".join(lines) + "\n"},
    }
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(body))
