"""Canary analysis decided by a real Prometheus, and by the kit's evaluation Job, with
requests flowing through the pods.

The text-classifier example runs as KServe deploys it on the real nodes; a Prometheus finds
the stage pods through Kubernetes service discovery (the scrape annotations the planner puts
on every stage) and scrapes their own metrics; the operator, in its pod, moves the weights
and queries Prometheus for the canary's error rate. A canary whose new model refuses long
inputs is aborted by the analysis and traffic returns to stable; a healthy one passes and is
promoted.

A job metric runs the evaluation image as a Job on the real node: it sends a labelled set to
each revision's own graph and exits on accuracy and agreement. A canary that answers as the
labels say is promoted; one whose model labels the texts otherwise is aborted, and the Job's
report is in the status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import pipelines as p
from tests.e2e.labelled import EVALUATION_IMAGE, LABELLED, TEXTS, job_report, labelled_set
from tests.harness import Cluster
from tests.harness.node import NODE_IP
from tests.harness.pod_serving import fit_to_machine, graph_url, install_models
from tests.harness.prometheus import Prometheus
from tests.harness.traffic import Traffic
from tests.support import kubectl_json, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.local_only]

EXAMPLE = Path(__file__).parents[2] / "manifests" / "examples" / "01-text-classifier"
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


def analysed(namespace: str, model: str, analysis: dict) -> dict:
    """The example serving ``model``, its canary analysed at 50% by ``analysis``."""
    body = yaml.safe_load((EXAMPLE / "pipeline.yaml").read_text())
    body["metadata"]["namespace"] = namespace
    stage = body["spec"]["stages"][0]
    stage["transformer"]["storageUri"] = stage["predictor"]["container"]["storageUri"] = model
    body["spec"]["rollout"] = {
        "canary": {"steps": [{"setWeight": 50}, {"analysis": analysis}]},
        "progressDeadlineSeconds": 600,
    }
    return fit_to_machine(body)


def pipeline(namespace: str, model: str, prometheus: Prometheus) -> dict:
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
    return analysed(namespace, model, analysis)


def ended(cluster: Cluster, namespace: str, name: str, canary: str) -> dict | None:
    """The pipeline's status once the rollout of ``canary`` was promoted or aborted."""
    st = p.status(cluster, namespace, name)
    promoted = st.get("stableRevision") == canary and st.get("phase") == "Healthy"
    return st if promoted or st.get("phase") == "Aborted" else None


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

        st = wait_for(
            lambda: ended(cluster, namespace, name, canary), 600, f"the analysis to end {outcome}"
        )
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


def evaluated(namespace: str, model: str) -> dict:
    """The example with its canary judged by the evaluation Job on the labelled set."""
    container = {
        "name": "evaluate",
        "image": EVALUATION_IMAGE,
        "imagePullPolicy": "Never",
        "args": ["--labelled=/data/set.jsonl", "--max-accuracy-drop=0.01", "--min-agreement=0.95"],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "labelled", "mountPath": "/data", "readOnly": True}],
    }
    template = {
        "spec": {
            "containers": [container],
            "volumes": [{"name": "labelled", "configMap": {"name": LABELLED}}],
        }
    }
    metric = {"name": "labelled-accuracy", "count": 1, "job": {"template": template}}
    return analysed(namespace, model, {"metrics": [metric]})


@pytest.mark.parametrize(
    ("model", "outcome"),
    # A retrained copy of v1 answers as the labels say; v2, another model, labels otherwise.
    [("pvc://models/sentiment-v1-retrained", "Healthy"), ("pvc://models/sentiment-v2", "Aborted")],
    ids=["agreeing-canary-promoted", "disagreeing-canary-aborted"],
)
def test_the_evaluation_job_promotes_or_aborts_the_canary_on_a_labelled_set(
    cluster: Cluster,
    namespace: str,
    operator_release: str,
    example_models: dict[str, Path],
    model: str,
    outcome: str,
) -> None:
    name = "text-classifier"
    v1 = example_models["pvc://models/sentiment-v1"]
    install_models(namespace, {**example_models, "pvc://models/sentiment-v1-retrained": v1})
    labelled_set(cluster, namespace, v1)
    p.apply(cluster, evaluated(namespace, "pvc://models/sentiment-v1"))
    stable = p.wait_status(cluster, namespace, name, "v1 Healthy", timeout=600, phase="Healthy")
    p.apply(cluster, evaluated(namespace, model))
    canary = wait_for(
        lambda: p.status(cluster, namespace, name).get("canaryRevision"), 60, "the canary"
    )

    st = wait_for(
        lambda: ended(cluster, namespace, name, canary), 600, f"the evaluation to end {outcome}"
    )
    assert st["phase"] == outcome, st
    [measured] = [m for m in st["analysis"]["measurements"] if not m.get("noData")]
    report = job_report(measured["message"])
    assert report["samples"] == len(TEXTS)
    assert report["stable"]["revision"] == stable["stableRevision"]
    assert report["canary"]["revision"] == canary
    assert report["stable"]["accuracy"] >= 0.95, report  # the labels are v1's answers
    if outcome == "Healthy":
        assert measured["success"] and report["passed"], report
        assert report["canary"]["accuracy"] == report["stable"]["accuracy"], report
        assert report["agreement"] == 1.0, report
        assert "AnalysisSucceeded" in p.events(cluster, namespace, name)
    else:
        assert not measured["success"] and not report["passed"], report
        assert report["agreement"] < 0.95, report
        assert "labelled-accuracy" in st["abortReason"]
        assert st["traffic"] == [{"revision": stable["stableRevision"], "weight": 100}]
        assert "AnalysisFailed" in p.events(cluster, namespace, name)
    jobs = kubectl_json(cluster, "get", "jobs", "-n", namespace)["items"]
    assert [j["metadata"]["ownerReferences"][0]["name"] for j in jobs] == [name]
    # The graphs of each revision's own serve the analysis only: gone once it has ended.
    wait_for(
        lambda: (
            [
                g
                for g in p.children(cluster, namespace, "InferenceGraph")
                if g["metadata"]["name"] != name
            ]
            == []
        ),
        120,
        "the revision graphs to be removed",
    )
