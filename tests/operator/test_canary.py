"""Canary rollouts end to end: the operator process against the real apiserver."""

from __future__ import annotations

import subprocess

import pytest

from tests import pipelines as p
from tests.harness import Cluster
from tests.harness.operator_process import OperatorProcess
from tests.support import wait_for

pytestmark = pytest.mark.cluster

STEPS = [{"setWeight": 10}, {"pause": {"duration": "3s"}}, {"setWeight": 50}, {"pause": {}}]


def weights(cluster: Cluster, namespace: str, graph: str) -> dict[str, int]:
    return p.traffic(cluster, namespace, graph)


def services_of(cluster: Cluster, namespace: str, revision: str) -> list[str]:
    return sorted(
        s["metadata"]["name"]
        for s in p.children(cluster, namespace, "inferenceservices")
        if s["metadata"]["labels"].get("pipelines.inference.dev/revision") == revision
    )


def deploy_stable(cluster: Cluster, namespace: str, rollout: dict) -> str:
    p.apply(cluster, p.classifier("clf", namespace, **rollout))
    st = p.wait_status(cluster, namespace, "clf", "first revision Healthy", phase="Healthy")
    assert st["traffic"] == [{"revision": st["stableRevision"], "weight": 100}]
    return str(st["stableRevision"])


def test_canary_walks_its_steps_and_promotes(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    stable = deploy_stable(cluster, namespace, {"strategy": "Canary", "canary": {"steps": STEPS}})
    assert len(services_of(cluster, namespace, stable)) == 2
    assert weights(cluster, namespace, "clf") == {stable: 100}

    p.apply(
        cluster,
        p.classifier("clf", namespace, model="bert-v2", strategy="Canary", canary={"steps": STEPS}),
    )
    st = p.wait_status(cluster, namespace, "clf", "canary at 10%", canaryWeight=10)
    canary = st["canaryRevision"]
    assert canary != stable
    assert st["stableRevision"] == stable
    assert len(services_of(cluster, namespace, canary)) == 2
    assert weights(cluster, namespace, "clf") == {stable: 90, canary: 10}

    st = p.wait_status(
        cluster,
        namespace,
        "clf",
        "canary at 50% after the timed pause",
        canaryWeight=50,
        phase="Paused",
    )
    assert st["currentStepIndex"] == 3
    assert weights(cluster, namespace, "clf") == {stable: 50, canary: 50}

    p.command(cluster, namespace, "clf", "promote", "1")
    st = p.wait_status(
        cluster, namespace, "clf", "rollout completed", phase="Healthy", stableRevision=canary
    )
    assert st["traffic"] == [{"revision": canary, "weight": 100}]
    assert st["lastCommand"]["result"] == "Accepted"
    assert weights(cluster, namespace, "clf") == {canary: 100}
    wait_for(
        lambda: services_of(cluster, namespace, stable) == [],
        30,
        "the old revision's InferenceServices to be deleted",
    )
    reasons = p.events(cluster, namespace, "clf")
    for reason in ("RolloutStarted", "WeightChanged", "Paused", "Resumed", "RolloutCompleted"):
        assert reason in reasons, f"no {reason} Event in {reasons}"


def test_abort_returns_all_traffic_to_stable_at_once(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    steps = [{"setWeight": 30}, {"pause": {}}]
    stable = deploy_stable(cluster, namespace, {"canary": {"steps": steps}})
    p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", canary={"steps": steps}))
    st = p.wait_status(cluster, namespace, "clf", "canary at 30%", canaryWeight=30, phase="Paused")
    canary = st["canaryRevision"]

    p.command(cluster, namespace, "clf", "abort", "1")
    st = p.wait_status(cluster, namespace, "clf", "rollout aborted", phase="Aborted")
    assert st["traffic"] == [{"revision": stable, "weight": 100}]
    assert "aborted by user" in st["abortReason"]
    assert weights(cluster, namespace, "clf") == {stable: 100}
    wait_for(
        lambda: services_of(cluster, namespace, canary) == [],
        30,
        "the aborted canary's InferenceServices to be deleted",
    )
    assert "Aborted" in p.events(cluster, namespace, "clf")


def test_canary_not_ready_within_the_deadline_aborts_with_a_reason(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    rollout = {"canary": {"steps": [{"setWeight": 50}]}, "progressDeadlineSeconds": 10}
    stable = deploy_stable(cluster, namespace, rollout)
    # The new classifier's model is on a claim that does not exist: its pod stays Pending.
    p.apply(cluster, p.classifier("clf", namespace, claim="no-such-claim", **rollout))
    st = p.wait_status(cluster, namespace, "clf", "deadline abort", timeout=40, phase="Aborted")
    assert st["traffic"] == [{"revision": stable, "weight": 100}]
    assert "classify" in st["abortReason"]
    assert "ProgressDeadlineExceeded" in p.events(cluster, namespace, "clf")


def test_a_spec_change_while_paused_deploys_nothing_until_resumed(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    stable = deploy_stable(cluster, namespace, {})
    paused = p.classifier("clf", namespace, model="bert-v2")
    paused["spec"]["paused"] = True
    p.apply(cluster, paused)
    st = wait_for(
        lambda: (s := p.status(cluster, namespace, "clf")).get("pendingRevision") and s,
        30,
        "the new revision to be held as pending",
    )
    pending = st["pendingRevision"]
    assert (st["phase"], st["stableRevision"], st.get("canaryRevision")) == (
        "Paused",
        stable,
        None,
    )
    assert services_of(cluster, namespace, pending) == []
    assert "RolloutStarted" not in p.events(cluster, namespace, "clf")
    assert "RolloutHeld" in p.events(cluster, namespace, "clf")

    paused["spec"]["paused"] = False
    p.apply(cluster, paused)
    p.wait_status(cluster, namespace, "clf", "the rollout to start", canaryRevision=pending)
    wait_for(
        lambda: len(services_of(cluster, namespace, pending)) == 2,
        30,
        "the new revision's InferenceServices",
    )


def annotate(cluster: Cluster, namespace: str, value: str) -> subprocess.CompletedProcess[str]:
    """Set the command annotation as any client would, overwriting what is there."""
    key = "pipelines.inference.dev/command"
    args = ("annotate", p.PLURAL, "clf", "-n", namespace, "--overwrite", f"{key}={value}")
    return cluster.kubectl(*args, check=False)


def test_a_pending_command_is_never_overwritten_and_abort_wins(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    steps = [{"setWeight": 30}, {"pause": {}}]
    stable = deploy_stable(cluster, namespace, {"canary": {"steps": steps}})
    p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", canary={"steps": steps}))
    p.wait_status(cluster, namespace, "clf", "canary at 30%", canaryWeight=30, phase="Paused")

    operator.kill()  # nothing acknowledges commands now: they stay pending
    assert annotate(cluster, namespace, "promote:p1").returncode == 0
    assert annotate(cluster, namespace, "abort:a1").returncode == 0, "abort replaces it"
    refused = annotate(cluster, namespace, "promote:p2")
    assert refused.returncode != 0
    assert "command abort:a1 is still pending" in refused.stderr
    operator.start()
    st = p.wait_status(cluster, namespace, "clf", "the pending abort", phase="Aborted")
    assert (st["lastCommand"]["command"], st["lastCommand"]["result"]) == ("abort:a1", "Accepted")
    assert weights(cluster, namespace, "clf") == {stable: 100}

    # Zero gap with the operator running: abort, then at once promote from another client.
    for trial in range(3):
        assert annotate(cluster, namespace, f"retry:r{trial}").returncode == 0
        p.wait_status(cluster, namespace, "clf", "the retried canary", canaryWeight=30)
        assert annotate(cluster, namespace, f"abort:a{trial}").returncode == 0
        promote = annotate(cluster, namespace, f"promote:p{trial}")
        st = p.wait_status(cluster, namespace, "clf", "the abort to win", phase="Aborted")
        ack = st["lastCommand"]
        if promote.returncode != 0:  # refused while the abort was pending
            assert f"abort:a{trial} is still pending" in promote.stderr
            assert (ack["command"], ack["result"]) == (f"abort:a{trial}", "Accepted")
        else:  # the abort was handled first: the promote is rejected, never carried out
            ack = wait_for(
                lambda t=trial: (
                    (a := p.status(cluster, namespace, "clf")["lastCommand"])["command"]
                    == f"promote:p{t}"
                    and a
                ),
                30,
                "the promote to be answered",
            )
            assert ack["result"] == "Rejected"
        assert weights(cluster, namespace, "clf") == {stable: 100}


def replica_bounds(cluster: Cluster, namespace: str) -> dict[str, tuple[int, int]]:
    """InferenceService -> the classify stage's predictor (minReplicas, maxReplicas)."""
    return {
        s["metadata"]["name"]: (
            s["spec"]["predictor"]["minReplicas"],
            s["spec"]["predictor"]["maxReplicas"],
        )
        for s in p.children(cluster, namespace, "inferenceservices")
        if s["metadata"]["labels"].get("pipelines.inference.dev/stage") == "classify"
    }


def test_scaling_and_quantity_spellings_apply_in_place_mid_canary(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    """Raising a stage's replicas is no new version: mid-canary, no third revision starts,
    the stable and the canary run the new scaling (the canary its share of it), and the
    rollout stays where it was; a quantity in another spelling changes nothing."""
    rollout = {"strategy": "Canary", "canary": {"steps": [{"setWeight": 25}, {"pause": {}}]}}
    stable = deploy_stable(cluster, namespace, rollout)
    p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", **rollout))
    st = p.wait_status(cluster, namespace, "clf", "canary paused at 25%", phase="Paused")
    canary = st["canaryRevision"]

    scaled = p.classifier("clf", namespace, model="bert-v2", **rollout)
    classify = scaled["spec"]["stages"][1]
    classify["scaling"] = {"minReplicas": 4, "maxReplicas": 8}
    classify["resources"] = {"gpus": 1, "cpu": "4000m", "memory": "16384Mi"}
    p.apply(cluster, scaled)
    wait_for(
        lambda: (
            replica_bounds(cluster, namespace)
            == {f"clf-classify-{stable}": (4, 8), f"clf-classify-{canary}": (1, 2)}
        ),
        30,
        "both revisions to run the new scaling",
    )
    st = p.status(cluster, namespace, "clf")
    assert (st["stableRevision"], st["canaryRevision"]) == (stable, canary)
    assert st["phase"] == "Paused" and st["canaryWeight"] == 25
    assert {
        s["metadata"]["labels"]["pipelines.inference.dev/revision"]
        for s in p.children(cluster, namespace, "inferenceservices")
    } == {stable, canary}
