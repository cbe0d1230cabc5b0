"""Rollouts of the examples on the real nodes: a canary of the text classifier stepped and
promoted by hand, a blue-green of the cascade promoted on its own, with the split measured
from the answers of the pods."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests import pipelines as p
from tests.harness import Cluster
from tests.harness.models import CORPUS
from tests.harness.pod_serving import fit_to_machine, graph_url, install_models
from tests.harness.traffic import Traffic, ask
from tests.support import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.local_only]

EXAMPLES = Path(__file__).parents[2] / "manifests" / "examples"
READY = 600


def example(name: str, namespace: str) -> dict:
    body = yaml.safe_load((EXAMPLES / name / "pipeline.yaml").read_text())
    body["metadata"]["namespace"] = namespace
    return fit_to_machine(body)


def test_canary_of_the_text_classifier_splits_real_traffic_and_is_promoted(
    cluster: Cluster, namespace: str, operator_release: str, example_models: dict[str, Path]
) -> None:
    install_models(namespace, example_models)
    body = example("01-text-classifier", namespace)
    body["spec"]["rollout"]["canary"]["steps"][1] = {"pause": {"duration": "2s"}}
    p.apply(cluster, body)
    stable = p.wait_status(
        cluster, namespace, "text-classifier", "v1", timeout=READY, phase="Healthy"
    )
    stage = body["spec"]["stages"][0]
    stage["transformer"]["storageUri"] = "pvc://models/sentiment-v2"
    stage["predictor"]["container"]["storageUri"] = "pvc://models/sentiment-v2"
    p.apply(cluster, body)
    st = p.wait_status(
        cluster,
        namespace,
        "text-classifier",
        "the canary at 50%",
        timeout=READY,
        phase="Paused",
        canaryWeight=50,
    )
    canary, old = st["canaryRevision"], stable["stableRevision"]
    assert p.traffic(cluster, namespace, "text-classifier") == {old: 50, canary: 50}
    wait_for(
        lambda: all(
            r.get("rolledOut")
            for r in p.status(cluster, namespace, "text-classifier").get("routers", [])
        ),
        120,
        "the router pod to serve the 50/50 split",
    )
    # KServe's router draws per request: 400 answers of a fair 50/50 split fall within 40-60%
    # but for one run in 10^4.
    with Traffic(graph_url(cluster, namespace, "text-classifier"), CORPUS, pause=0) as traffic:
        wait_for(lambda: len(traffic.answers) >= 400, 300, "400 answers")
    answers = traffic.answers[:400]
    assert all(a.status == 200 for a in answers), Counter(a.status for a in answers)
    shares = Traffic.shares(answers)
    assert set(shares) == {old, canary}, shares
    assert 0.4 <= shares[canary] <= 0.6, shares
    p.command(cluster, namespace, "text-classifier", "promote", "1")
    done = p.wait_status(
        cluster,
        namespace,
        "text-classifier",
        "the canary promoted",
        timeout=READY,
        phase="Healthy",
        stableRevision=canary,
    )
    assert done["ready"] == "1/1"


def test_blue_green_of_the_cascade_is_promoted_on_its_own(
    cluster: Cluster, namespace: str, operator_release: str, example_models: dict[str, Path]
) -> None:
    install_models(namespace, example_models)
    body = example("03-cascade", namespace)
    body["spec"]["rollout"]["blueGreen"] = {"autoPromotionSeconds": 1, "scaleDownDelaySeconds": 1}
    p.apply(cluster, body)
    blue = p.wait_status(
        cluster, namespace, "cascade", "blue Healthy", timeout=READY, phase="Healthy"
    )
    body["spec"]["stages"][1]["predictor"]["container"]["storageUri"] = "pvc://models/sentiment-v2"
    p.apply(cluster, body)
    green = wait_for(
        lambda: (
            (s := p.status(cluster, namespace, "cascade")).get("stableRevision")
            != blue["stableRevision"]
            and s.get("phase") == "Healthy"
            and not s.get("previousRevision")
            and s
        ),
        READY,
        "green promoted automatically and blue scaled down",
    )
    assert green["ready"] == "2/2"
    wait_for(
        lambda: (
            {
                s["metadata"]["labels"]["pipelines.inference.dev/revision"]
                for s in p.children(cluster, namespace, "inferenceservices")
            }
            == {green["stableRevision"]}
        ),
        120,
        "only green's services left",
    )
    answer = ask(graph_url(cluster, namespace, "cascade"), CORPUS[0])
    assert answer.status == 200 and answer.revisions == {green["stableRevision"]}
