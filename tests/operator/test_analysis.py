"""Canary analysis decided by a real Prometheus, with requests flowing through the router.

The text-classifier example runs as KServe deploys it (stages as local processes, KServe's
router in front, swapped as KServe rolls it out); the pinned Prometheus scrapes the stages'
own metrics; the operator moves the weights and queries Prometheus for the canary's error
rate. A canary whose new model refuses long inputs is aborted by the analysis and traffic
returns to stable; a healthy one passes and is promoted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests import pipelines as p
from tests.harness import Cluster
from tests.harness.models import CORPUS, build_example_models
from tests.harness.operator_process import OperatorProcess
from tests.harness.prometheus import Prometheus
from tests.harness.serving import LocalServing
from tests.harness.traffic import Traffic
from tests.support import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.local_only, pytest.mark.router]

EXAMPLE = Path(__file__).parents[2] / "manifests" / "examples" / "01-text-classifier"
# Short and long texts: the broken canary's model takes at most 16 tokens. The local stages
# start once KServe's Deployments are available in the cluster, a few seconds after kwok has
# reported their pods Ready there: measurements are 15 s apart, so the first one is taken
# with the canary serving locally too.
TEXTS = [*CORPUS, *(f"{a} but {b}" for a in CORPUS[:4] for b in CORPUS[8:])]
ERROR_RATE = (
    '(sum(rate(pipeline_stage_requests_total{pipeline="{{pipeline}}",revision="{{revision}}",'
    'outcome=~"internal|invalid_input"}[15s])) or vector(0)) / max(sum by (stage, component) '
    '(rate(pipeline_stage_requests_total{pipeline="{{pipeline}}",revision="{{revision}}"}[15s])))'
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_example_models(tmp_path_factory.mktemp("models"))


@pytest.fixture
def prometheus(cluster: Cluster, tmp_path: Path) -> Iterator[Prometheus]:
    with Prometheus(cluster.tools, tmp_path / "prometheus") as server:
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
        "progressDeadlineSeconds": 120,
    }
    return dict(body)


@pytest.mark.parametrize(
    ("model", "outcome"),
    [("pvc://models/sentiment-v2", "Healthy"), ("pvc://models/sentiment-short", "Aborted")],
    ids=["healthy-canary-promoted", "failing-canary-aborted"],
)
def test_analysis_on_live_traffic_promotes_or_aborts_the_canary(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    prometheus: Prometheus,
    models: dict[str, Path],
    tmp_path: Path,
    model: str,
    outcome: str,
) -> None:
    name = "text-classifier"
    p.apply(cluster, pipeline(namespace, "pvc://models/sentiment-v1", prometheus))
    stable = p.wait_status(cluster, namespace, name, "v1 Healthy", timeout=90, phase="Healthy")
    serving = LocalServing(
        cluster, namespace, models, tmp_path / "serving", name, on_change=prometheus.scrape
    )
    with serving, Traffic(serving, TEXTS) as traffic:
        prometheus.wait_for(f'pipeline_stage_requests_total{{pipeline="{name}"}}')
        p.apply(cluster, pipeline(namespace, model, prometheus))
        canary = wait_for(
            lambda: p.status(cluster, namespace, name).get("canaryRevision"), 60, "the canary"
        )

        def ended() -> dict | None:
            st = p.status(cluster, namespace, name)
            promoted = st.get("stableRevision") == canary and st.get("phase") == "Healthy"
            return st if promoted or st.get("phase") == "Aborted" else None

        st = wait_for(ended, 150, f"the analysis to end {outcome}")
        seen = Counter((a.status, a.revisions) for a in traffic.answers)
        assert any(a.revisions == {canary} for a in traffic.answers), f"no canary answer: {seen}"
        # Once the router has rolled out the decision, every request goes to the winner.
        winner = frozenset({canary if outcome == "Healthy" else stable["stableRevision"]})
        wait_for(
            lambda: {a.revisions for a in traffic.answers[-20:]} == {winner},
            60,
            f"the last 20 requests to be answered by {set(winner)} alone",
        )
        assert all(a.status == 200 for a in traffic.answers[-20:])
        assert serving.error is None
    assert st["phase"] == outcome, st
    # Queries before the canary's stages had served (no data yet) are errors, retried.
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
