"""Canary analysis decided by a real Prometheus, with requests flowing through the pods.

The text-classifier example runs as KServe deploys it on the real nodes; a Prometheus finds
the stage pods through Kubernetes service discovery (the scrape annotations the planner puts
on every stage) and scrapes their own metrics; the operator, in its pod, moves the weights
and queries Prometheus for the canary's error rate. A canary whose new model refuses long
inputs is aborted by the analysis and traffic returns to stable; a healthy one passes and is
promoted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import pipelines as p
from tests.harness import Cluster
from tests.harness.models import CORPUS
from tests.harness.node import NODE_IP
from tests.harness.pod_serving import fit_to_machine, graph_url, install_models
from tests.harness.prometheus import Prometheus
from tests.harness.traffic import Traffic
from tests.support import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.local_only]

EXAMPLE = Path(__file__).parents[2] / "manifests" / "examples" / "01-text-classifier"
# Short and long texts: the broken canary's model takes at most 16 tokens.
TEXTS = [*CORPUS, *(f"{a} but {b}" for a in CORPUS[:4] for b in CORPUS[8:])]
ERROR_RATE = (
    '(sum(rate(pipeline_stage_requests_total{pipeline="{{pipeline}}",revision="{{revision}}",'
    'outcome=~"internal|invalid_input"}[15s])) or vector(0)) / max(sum by (stage, component) '
    '(rate(pipeline_stage_requests_total{pipeline="{{pipeline}}",revision="{{revision}}"}[15s])))'
)


@pytest.fixture
def prometheus(cluster: Cluster, tmp_path: Path) -> Iterator[Prometheus]:
    """Discovers pods through the API; listens on the node address the operator pod reaches."""
    server = Prometheus(
        cluster.tools, tmp_path / "prometheus", kubeconfig=cluster.kubeconfig, host=NODE_IP
    )
    with server:
        yield server


def pipeline(namespace: str, model: str, prometheus: Prometheus) -> dict:
    body = yaml.safe_load((EXAMPLE / "pipeline.yaml").read_text())
    body["metadata"]["namespace"] = namespace
    stage = body["spec"]["stages"][0]
    stage["transformer"]["storageUri"] = stage["predictor"]["container"]["storageUri"] = model
    analysis = {
        "address": prometheus.address,
        "metrics": [
            {
                "name": "error-rate",
                "query": ERROR_RATE,
                "successCondition": "result < 0.05",
                "interval": "15s",
                "count": 2,
            }
        ],
    }
    body["spec"]["rollout"] = {
        "canary": {"steps": [{"setWeight": 50}, {"analysis": analysis}]},
        "progressDeadlineSeconds": 600,
    }
    return fit_to_machine(body)


@pytest.mark.parametrize(
    ("model", "outcome"),
    [("pvc://models/sentiment-v2", "Healthy"), ("pvc://models/sentiment-short", "Aborted")],
    ids=["healthy-canary-promoted", "failing-canary-aborted"],
)
def test_analysis_on_live_traffic_promotes_or_aborts_the_canary(
    cluster: Cluster,
    namespace: str,
    operator_release: str,
    prometheus: Prometheus,
    example_models: dict[str, Path],
    model: str,
    outcome: str,
) -> None:
    name = "text-classifier"
    install_models(namespace, example_models)
    p.apply(cluster, pipeline(namespace, "pvc://models/sentiment-v1", prometheus))
    stable = p.wait_status(cluster, namespace, name, "v1 Healthy", timeout=600, phase="Healthy")
    url = graph_url(cluster, namespace, name)
    with Traffic(url, TEXTS) as traffic:
        # Found by service discovery, not told: the stage pods' own series.
        prometheus.wait_for(f'pipeline_stage_requests_total{{pipeline="{name}"}}', timeout=90)
        p.apply(cluster, pipeline(namespace, model, prometheus))
        canary = wait_for(
            lambda: p.status(cluster, namespace, name).get("canaryRevision"), 60, "the canary"
        )

        def ended() -> dict | None:
            st = p.status(cluster, namespace, name)
            promoted = st.get("stableRevision") == canary and st.get("phase") == "Healthy"
            return st if promoted or st.get("phase") == "Aborted" else None

        st = wait_for(ended, 600, f"the analysis to end {outcome}")
        seen = Counter((a.status, a.revisions) for a in traffic.answers)
        assert any(a.revisions == {canary} for a in traffic.answers), f"no canary answer: {seen}"
        # Once the router has rolled out the decision, every request goes to the winner.
        winner = frozenset({canary if outcome == "Healthy" else stable["stableRevision"]})
        wait_for(
            lambda: {a.revisions for a in traffic.answers[-20:]} == {winner},
            120,
            f"the last 20 requests to be answered by {set(winner)} alone",
        )
        assert all(a.status == 200 for a in traffic.answers[-20:])
    assert st["phase"] == outcome, st
    measurements = [m for m in st.get("analysis", {}).get("measurements", []) if not m["error"]]
    assert measurements, st
    if outcome == "Aborted":
        assert "error-rate" in st["abortReason"]
        assert any(not m["success"] and m["value"] > 0.05 for m in measurements), measurements
        assert st["traffic"] == [{"revision": stable["stableRevision"], "weight": 100}]
        assert "AnalysisFailed" in p.events(cluster, namespace, name)
    else:
        assert len(measurements) == 2 and all(m["success"] for m in measurements), measurements
        assert "AnalysisSucceeded" in p.events(cluster, namespace, name)
