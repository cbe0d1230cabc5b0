"""The 05-experiments example through a real Gateway: Traefik, built from its Go module, routes
by the HTTPRoute the operator owns to each revision's own InferenceGraph, whose router pod,
transformer pod and predictor pod answer.

A rollout of a retrained model is followed from the caller's side: first a shadow step copies
a fifth of the stable's requests to the canary through a TraefikService while every answer
is the stable's; then a tester cohort always reaches the canary, sticky users keep their
revision as its weight grows from 10% to 50% (none ever returns to the stable), the rest is
split by weight; the evaluation Job passes, and the promotion waits until the approval
webhook allows it. A model that labels the texts otherwise is then aborted by the Job, and
every request, the cohort's too, returns to the stable. The shares are checked within four
standard deviations of their binomial law.

Last, the same shadow step as a RequestMirror filter, which Traefik's Gateway provider does
not implement, is refused, naming it.
"""

from __future__ import annotations

import json
import math
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pipeline_operator.core.naming import service_name
from tests import pipelines as p
from tests.e2e.labelled import TEXTS, job_report, labelled_set
from tests.harness import Cluster, LocalCluster
from tests.harness.gateway import Gateway, wait_for_route
from tests.harness.node import NODE_IP
from tests.harness.pod_serving import fit_to_machine, graph_url, install_models
from tests.harness.traffic import served_by
from tests.http_sink import Sink, http_sink
from tests.support import kubectl_json, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.local_only]

EXAMPLE = Path(__file__).parents[2] / "manifests" / "examples" / "05-experiments"
NAME = "experiment"
USERS = 200
BUCKETS = 256  # a sticky user's bucket: the last two hex digits of its id
MIRRORED = 500  # requests sent while the canary is mirrored to, besides the latency probe


@pytest.fixture(scope="module")
def gateway(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The Gateway the example attaches to, served by a Traefik of its own."""
    if not isinstance(cluster, LocalCluster):
        pytest.skip("the harness runs its Gateway on the local cluster only")
    ref = example()["spec"]["rollout"]["trafficRouting"]["gatewayAPI"]["parentRefs"][0]
    workdir = tmp_path_factory.mktemp("gateway")
    with Gateway(cluster, workdir, name=ref["name"], namespace=ref["namespace"]) as served:
        yield served


@pytest.fixture
def approvals() -> Iterator[Sink]:
    """The approval webhook, where the operator pod reaches it; it refuses until told."""
    with http_sink(host=NODE_IP) as sink:
        sink.set("/approve", {"approved": False}, status=403)
        yield sink


def example() -> dict:
    return dict(yaml.safe_load((EXAMPLE / "pipeline.yaml").read_text()))


def rolled_out(namespace: str, model: str, approvals: Sink) -> dict:
    """The example in ``namespace`` serving ``model``, its gate asking ``approvals``."""
    body = example()
    body["metadata"]["namespace"] = namespace
    stage = body["spec"]["stages"][0]
    stage["transformer"]["storageUri"] = stage["predictor"]["container"]["storageUri"] = model
    [hook] = body["spec"]["rollout"]["webhooks"]
    hook["url"] = f"{approvals.url}/approve"
    for step in body["spec"]["rollout"]["canary"]["steps"]:
        if "pause" in step:  # long enough to measure at each weight, and no longer
            step["pause"] = {"duration": "30s"}
    return fit_to_machine(body)


def ask(http: httpx.Client, url: str, headers: Mapping[str, str] | None = None) -> str:
    """The revision that answered one request through the Gateway."""
    response = http.post(url, json={"instances": [TEXTS[0]]}, headers=dict(headers or {}))
    assert response.status_code == 200, (response.status_code, response.text[:300])
    [revision] = served_by(response.json())
    return revision


def bound(n: int, share: float, sigmas: float = 4.0) -> tuple[float, float]:
    """The counts of ``n`` draws of probability ``share`` within ``sigmas`` deviations."""
    mean, deviation = n * share, math.sqrt(n * share * (1 - share))
    return mean - sigmas * deviation, mean + sigmas * deviation


def canary_share(weight: int) -> float:
    """The share of user ids whose bucket the canary of ``weight`` percent takes."""
    return round(BUCKETS * weight / 100) / BUCKETS


def at_step(cluster: Cluster, namespace: str, index: int) -> dict | None:
    st = p.status(cluster, namespace, NAME)
    return st if st.get("currentStepIndex") == index and st.get("canaryRevision") else None


def gate_waiting(cluster: Cluster, namespace: str) -> dict | None:
    st = p.status(cluster, namespace, NAME)
    gates = {g["type"]: g["phase"] for g in st.get("gates", [])}
    return st if gates.get("ConfirmPromotion") == "Waiting" else None


def latencies(http: httpx.Client, url: str, count: int) -> list[float]:
    took = []
    for _ in range(count):
        started = time.perf_counter()
        response = http.post(url, json={"instances": [TEXTS[0]]})
        took.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text[:300]
    return took


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


# Three rollouts on a 2-core machine, each with its pods, pauses and an evaluation Job.
@pytest.mark.timeout(1500)
def test_cohorts_sticky_users_and_the_evaluation_job_through_a_real_gateway(
    cluster: Cluster,
    namespace: str,
    operator_release: str,
    example_models: dict[str, Path],
    gateway: Gateway,
    approvals: Sink,
    record_property: pytest.RecordProperty,
) -> None:
    v1 = example_models["pvc://models/sentiment-v1"]
    install_models(namespace, {**example_models, "pvc://models/sentiment-v1-retrained": v1})
    labelled_set(cluster, namespace, v1)
    p.apply(cluster, rolled_out(namespace, "pvc://models/sentiment-v1", approvals))
    st = p.wait_status(cluster, namespace, NAME, "v1 Healthy", timeout=600, phase="Healthy")
    stable = st["stableRevision"]
    wait_for_route(gateway, namespace, NAME, timeout=120)
    url = f"{gateway.address}/"
    users = [uuid.uuid4().hex for _ in range(USERS)]
    cohort = {"X-Cohort": "testers"}
    with httpx.Client(timeout=60) as http:
        # Traefik reads the route's backends from their EndpointSlices: the first answer may
        # take a moment after the route is accepted.
        seen: list[str] = []
        try:
            wait_for(lambda: _answers(http, url, seen), 90, "the Gateway to answer")
        except AssertionError as err:
            raise AssertionError(f"{err}; it answered {seen}") from None
        assert {ask(http, url, cohort) for _ in range(20)} == {stable}
        without_mirror = latencies(http, url, 200)

        # The retrained model: it agrees with v1 on every text, passes the Job. First, the
        # shadow: the stable revision's requests pass a TraefikService that copies 20% of
        # them to the canary; every answer is still the stable revision's.
        p.apply(cluster, rolled_out(namespace, "pvc://models/sentiment-v1-retrained", approvals))
        st = wait_for(lambda: _mirroring(cluster, namespace), 600, "the canary mirrored to")
        shadowed = st["canaryRevision"]
        [mirroring] = p.children(cluster, namespace, "traefikservices")
        assert mirroring["spec"]["mirroring"]["mirrors"][0]["percent"] == 20, mirroring
        before = _predictor_requests(cluster, namespace, shadowed)
        mirrored_answers = Counter(ask(http, url) for _ in range(MIRRORED))
        with_mirror = latencies(http, url, 200)
        time.sleep(2)  # the copies are sent beside the answers, not before them
        copies = _predictor_requests(cluster, namespace, shadowed) - before
        assert p.status(cluster, namespace, NAME).get("mirrorPercent") == 20  # still mirrored
        assert mirrored_answers == {stable: MIRRORED}, mirrored_answers
        # Traefik copies a request whenever its copies fall below the share of those it saw.
        low, high = bound(MIRRORED + 200, 0.2)
        assert low <= copies <= high, (copies, low, high)

        st = wait_for(lambda: at_step(cluster, namespace, 4), 600, "the canary at 10%, paused")
        canary = st["canaryRevision"]
        assert canary == shadowed and st["canaryWeight"] == 10, st
        # setMirror 0 ended the shadow: the route names the stable graph, the service went.
        wait_for(
            lambda: not p.children(cluster, namespace, "traefikservices"),
            60,
            "the TraefikService to go once the route no longer names it",
        )
        at_10 = {user: ask(http, url, {"X-User-Id": user}) for user in users}
        testers_10 = Counter(ask(http, url, cohort) for _ in range(100))
        # Still within the pause, or the weights above were not those of 10%.
        assert p.status(cluster, namespace, NAME)["canaryWeight"] == 10
        assert testers_10 == {canary: 100}, testers_10
        taken_10 = [u for u, revision in at_10.items() if revision == canary]
        low, high = bound(USERS, canary_share(10))
        assert low <= len(taken_10) <= high, (len(taken_10), low, high)
        assert set(at_10.values()) <= {stable, canary}

        st = wait_for(lambda: gate_waiting(cluster, namespace), 600, "the promotion gate")
        assert st["canaryWeight"] == 50, st
        at_50 = {user: [ask(http, url, {"X-User-Id": user}) for _ in range(2)] for user in users}
        testers_50 = Counter(ask(http, url, cohort) for _ in range(900))
        split = Counter(ask(http, url) for _ in range(300))
        assert testers_50 == {canary: 900}, testers_50
        flipped = [u for u in taken_10 if at_50[u] != [canary, canary]]
        assert not flipped, f"users the canary took at 10% that left it at 50%: {flipped}"
        wavered = [u for u, seen in at_50.items() if len(set(seen)) > 1]
        assert not wavered, f"users answered by both revisions at one weight: {wavered}"
        taken_50 = [u for u, seen in at_50.items() if seen[0] == canary]
        low, high = bound(USERS, canary_share(50))
        assert low <= len(taken_50) <= high, (len(taken_50), low, high)
        low, high = bound(300, 0.5)
        assert set(split) <= {stable, canary} and low <= split[canary] <= high, split

        # The caller's latency through the Gateway against the revision's own graph Service.
        direct = wait_for(lambda: graph_url(cluster, namespace, f"{NAME}-{stable}"), 30, "graph")
        through = latencies(http, url, 200)
        beside = latencies(http, direct, 200)

        # The gate holds the promotion until the webhook allows it.
        assert p.status(cluster, namespace, NAME)["stableRevision"] == stable
        approvals.set("/approve", {"approved": True})
        wait_for(
            lambda: p.status(cluster, namespace, NAME).get("stableRevision") == canary,
            120,
            "the promotion once approved",
        )
        wait_for(
            lambda: {ask(http, url, {"X-User-Id": u}) for u in users[:20]} == {canary},
            120,
            "every user on the promoted revision",
        )
        st = p.status(cluster, namespace, NAME)
        assert st["phase"] == "Healthy" and st["traffic"] == [{"revision": canary, "weight": 100}]
        [measured] = [m for m in st["analysis"]["measurements"] if not m.get("noData")]
        assert measured["success"], measured
        report = job_report(measured["message"])
        assert report["agreement"] == 1.0 and report["passed"], report
        assert any(r.path == "/approve" for r in approvals.requests)
        job_seconds = _job_seconds(cluster, namespace)

        # A model that labels otherwise: the Job aborts it, and the cohort returns too.
        promoted = canary
        p.apply(cluster, rolled_out(namespace, "pvc://models/sentiment-v2", approvals))
        st = p.wait_status(
            cluster, namespace, NAME, "the Job's abort", timeout=600, phase="Aborted"
        )
        assert "labelled-accuracy" in st["abortReason"], st
        assert st["traffic"] == [{"revision": promoted, "weight": 100}], st
        wait_for(
            lambda: {ask(http, url, cohort) for _ in range(20)} == {promoted},
            120,
            "the cohort back on the stable revision",
        )
        assert {ask(http, url, {"X-User-Id": u}) for u in users[:50]} == {promoted}

        # The shadow step as a RequestMirror filter, on a Gateway whose class does not mirror
        # (Traefik answers 500 on a rule with the filter): refused, naming the step; the route
        # and its answers stay.
        filtered = rolled_out(namespace, "pvc://models/sentiment-v2", approvals)
        del filtered["spec"]["rollout"]["trafficRouting"]["gatewayAPI"]["mirrorWith"]
        p.apply(cluster, filtered)
        st = wait_for(
            lambda: _refused_mirror(cluster, namespace), 60, "the shadow step to be refused"
        )
        assert f"GatewayClass {gateway.class_name} of Gateway" in st["message"], st
        assert "InvalidSpec" in p.events(cluster, namespace, NAME)
        [route] = p.children(cluster, namespace, "HTTPRoute")
        assert all("filters" not in rule for rule in route["spec"]["rules"]), route
        assert {ask(http, url) for _ in range(20)} == {promoted}

    figures = {
        "rollout_requests": USERS * 3 + 100 + 900 + 300,
        "cohort_correct": f"{testers_10[canary] + testers_50[canary]}/1000",
        "sticky_users_taken_at_10": len(taken_10),
        "sticky_users_taken_at_50": len(taken_50),
        "split_canary_of_300_at_50": split[canary],
        "gateway_p50_ms": round(percentile(through, 50) * 1000, 1),
        "gateway_p99_ms": round(percentile(through, 99) * 1000, 1),
        "direct_p50_ms": round(percentile(beside, 50) * 1000, 1),
        "direct_p99_ms": round(percentile(beside, 99) * 1000, 1),
        "evaluation_job_seconds": job_seconds,
        f"mirrored_copies_of_{MIRRORED + 200}_at_20": copies,
        "mirror_on_p50_ms": round(percentile(with_mirror, 50) * 1000, 1),
        "mirror_on_p99_ms": round(percentile(with_mirror, 99) * 1000, 1),
        "mirror_off_p50_ms": round(percentile(without_mirror, 50) * 1000, 1),
        "mirror_off_p99_ms": round(percentile(without_mirror, 99) * 1000, 1),
    }
    print(f"gateway figures: {json.dumps(figures)}")
    for key, value in figures.items():
        record_property(key, value)


def _answers(http: httpx.Client, url: str, seen: list[str]) -> bool:
    """Whether one request gets a 200; what it got instead is left in ``seen``."""
    try:
        response = http.post(url, json={"instances": [TEXTS[0]]})
    except httpx.HTTPError as err:
        seen[:] = [f"{type(err).__name__}: {err}"]
        return False
    seen[:] = [f"{response.status_code} {response.text[:300]}"]
    return response.status_code == 200


def _refused_mirror(cluster: Cluster, namespace: str) -> dict | None:
    st = p.status(cluster, namespace, NAME)
    message = st.get("message", "")
    refused = "steps[0].setMirror" in message and "HTTPRouteRequestPercentageMirror" in message
    return st if refused else None


def _job_seconds(cluster: Cluster, namespace: str) -> float:
    """How long the evaluation Job ran (start to completion), from its status."""
    [job] = kubectl_json(cluster, "get", "jobs", "-n", namespace)["items"]
    started, done = job["status"]["startTime"], job["status"]["completionTime"]
    parse = "%Y-%m-%dT%H:%M:%SZ"
    return time.mktime(time.strptime(done, parse)) - time.mktime(time.strptime(started, parse))


def _mirroring(cluster: Cluster, namespace: str) -> dict | None:
    st = p.status(cluster, namespace, NAME)
    paused = st.get("currentStepIndex") == 1 and st.get("canaryRevision")
    return st if paused and st.get("mirrorPercent") == 20 else None


def _predictor_requests(cluster: Cluster, namespace: str, revision: str) -> int:
    """Requests the predictor pods of ``revision`` answered, from their own metrics."""
    isvc = service_name(NAME, "classifier", revision)
    selector = f"serving.kserve.io/inferenceservice={isvc},component=predictor"
    listed = kubectl_json(cluster, "get", "pods", "-n", namespace, "-l", selector)["items"]
    ips = [pod["status"].get("podIP") for pod in listed if pod["status"].get("phase") == "Running"]
    assert ips, f"no running predictor pod of {isvc}"
    total = 0
    for ip in ips:
        text = httpx.get(f"http://{ip}:8080/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            if family.name != "pipeline_stage_requests":
                continue
            total += int(
                sum(
                    sample.value
                    for sample in family.samples
                    if sample.name.endswith("_total") and sample.labels.get("outcome") == "ok"
                )
            )
    return total
