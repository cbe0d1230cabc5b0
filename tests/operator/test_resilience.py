"""Restart safety and self-healing: level-triggered reconciles from spec + status alone."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests import pipelines as p
from tests.harness import Cluster
from tests.harness.operator_process import OperatorProcess
from tests.operator.test_canary import deploy_stable, services_of, weights
from tests.support import kubectl_json, wait_for

pytestmark = pytest.mark.cluster

STEPS = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]


def api_writes(operator: OperatorProcess) -> float:
    return operator.counter("pipeline_operator_api_writes_total")


def test_operator_killed_mid_rollout_continues_from_the_same_step(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    stable = deploy_stable(cluster, namespace, {"canary": {"steps": STEPS}})
    p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", canary={"steps": STEPS}))
    st = p.wait_status(
        cluster, namespace, "clf", "canary paused at 20%", canaryWeight=20, phase="Paused"
    )
    canary = st["canaryRevision"]
    names_before = sorted(
        s["metadata"]["name"] for s in p.children(cluster, namespace, "inferenceservices")
    )

    operator.kill()
    p.command(cluster, namespace, "clf", "promote", "while-down")
    operator.start()

    st = p.wait_status(
        cluster,
        namespace,
        "clf",
        "the promote to be handled after restart",
        canaryWeight=60,
        phase="Paused",
    )
    assert st["stableRevision"] == stable
    assert st["canaryRevision"] == canary
    assert st["currentStepIndex"] == 3
    names_after = sorted(
        s["metadata"]["name"] for s in p.children(cluster, namespace, "inferenceservices")
    )
    assert names_after == names_before, "no child duplicated or lost across the restart"
    assert weights(cluster, namespace, "clf") == {stable: 40, canary: 60}
    assert p.events(cluster, namespace, "clf").count("RolloutStarted") == 1


def test_child_deleted_by_hand_comes_back_and_edited_is_put_back(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    stable = deploy_stable(cluster, namespace, {})
    victim = services_of(cluster, namespace, stable)[0]
    uid = kubectl_json(cluster, "get", "isvc", victim, "-n", namespace)["metadata"]["uid"]
    cluster.kubectl("delete", "isvc", victim, "-n", namespace)

    def recreated() -> bool:
        got = cluster.kubectl("get", "isvc", victim, "-n", namespace, "-o", "json", check=False)
        return got.returncode == 0 and json.loads(got.stdout)["metadata"]["uid"] != uid

    wait_for(recreated, 30, f"InferenceService {victim} to be recreated")

    patch = {"spec": {"predictor": {"maxReplicas": 42}}}
    cluster.kubectl(
        "patch", "isvc", victim, "-n", namespace, "--type=merge", "-p", json.dumps(patch)
    )
    wait_for(
        lambda: (
            kubectl_json(cluster, "get", "isvc", victim, "-n", namespace)["spec"]["predictor"].get(
                "maxReplicas"
            )
            == 1
        ),
        30,
        "the hand edit (maxReplicas 42) to be reverted to 1",
    )
    cluster.kubectl(
        "patch",
        "inferencegraph",
        "clf",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"nodes": {"root": {"routerType": "Ensemble"}}}}),
    )
    wait_for(
        lambda: (
            kubectl_json(cluster, "get", "inferencegraph", "clf", "-n", namespace)["spec"]["nodes"][
                "root"
            ]["routerType"]
            == "Sequence"
        ),
        30,
        "the graph's root Sequence to be restored",
    )


def test_a_removed_pipeline_label_or_owner_reference_is_restored_within_seconds(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    stable = deploy_stable(cluster, namespace, {})
    unlabelled, disowned = services_of(cluster, namespace, stable)
    cluster.kubectl(
        "label", "isvc", unlabelled, "-n", namespace, "pipelines.inference.dev/pipeline-"
    )
    remove = [{"op": "remove", "path": "/metadata/ownerReferences"}]
    cluster.kubectl(
        "patch", "isvc", disowned, "-n", namespace, "--type=json", "-p", json.dumps(remove)
    )

    def restored(name: str) -> bool:
        meta = kubectl_json(cluster, "get", "isvc", name, "-n", namespace)["metadata"]
        owners = [o["name"] for o in meta.get("ownerReferences") or [] if o.get("controller")]
        return meta["labels"].get("pipelines.inference.dev/pipeline") == "clf" and owners == ["clf"]

    # The resync is 300 s: only the child's own watch event can bring these back this soon.
    wait_for(lambda: restored(unlabelled), 10, f"the pipeline label of {unlabelled} to be restored")
    wait_for(lambda: restored(disowned), 10, f"the owner reference of {disowned} to be restored")


def test_fields_added_by_hand_are_removed_and_kserve_defaults_kept(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    stable = deploy_stable(cluster, namespace, {})
    tokenize, classify = (f"clf-{stage}-{stable}" for stage in ("tokenize", "classify"))

    def isvc(name: str) -> dict:
        return dict(kubectl_json(cluster, "get", "isvc", name, "-n", namespace))

    def patch(kind: str, name: str, ops: list[dict]) -> None:
        cluster.kubectl("patch", kind, name, "-n", namespace, "--type=json", "-p", json.dumps(ops))

    defaults = isvc(classify)["spec"]["predictor"]["model"]
    gpu = "/spec/predictor/containers/0/resources/limits/nvidia.com~1gpu"
    patch("isvc", tokenize, [{"op": "add", "path": gpu, "value": "1"}])
    account = {"op": "add", "path": "/spec/predictor/serviceAccountName", "value": "by-hand"}
    patch("isvc", classify, [account])
    node = {"routerType": "Sequence", "steps": [{"serviceName": classify}]}
    patch("inferencegraph", "clf", [{"op": "add", "path": "/spec/nodes/extra", "value": node}])

    wait_for(
        lambda: (
            "nvidia.com/gpu"
            not in isvc(tokenize)["spec"]["predictor"]["containers"][0]["resources"]["limits"]
        ),
        30,
        "the GPU limit added to the CPU stage to be removed",
    )
    wait_for(
        lambda: "serviceAccountName" not in isvc(classify)["spec"]["predictor"],
        30,
        "the serviceAccountName added by hand to be removed",
    )
    wait_for(
        lambda: (
            list(
                kubectl_json(cluster, "get", "inferencegraph", "clf", "-n", namespace)["spec"][
                    "nodes"
                ]
            )
            == ["root"]
        ),
        30,
        "the graph node added by hand to be removed",
    )
    # What KServe's webhook filled in (owned by no field manager) stays.
    assert isvc(classify)["spec"]["predictor"]["model"] == defaults


def test_a_deleted_snapshot_of_the_stable_revision_is_rebuilt_from_its_children(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    stable = deploy_stable(cluster, namespace, {"canary": {"steps": STEPS}})
    p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", canary={"steps": STEPS}))
    p.wait_status(cluster, namespace, "clf", "canary paused at 20%", canaryWeight=20, ready="4/4")

    snapshot = f"clf-{stable}"
    uid = kubectl_json(cluster, "get", "controllerrevision", snapshot, "-n", namespace)["metadata"][
        "uid"
    ]
    cluster.kubectl("delete", "controllerrevision", snapshot, "-n", namespace)
    victim = services_of(cluster, namespace, stable)[0]
    cluster.kubectl("delete", "isvc", victim, "-n", namespace)

    def rebuilt() -> bool:
        got = cluster.kubectl(
            "get", "controllerrevision", snapshot, "-n", namespace, "-o", "json", check=False
        )
        return got.returncode == 0 and json.loads(got.stdout)["metadata"]["uid"] != uid

    wait_for(rebuilt, 30, f"the snapshot {snapshot} to be rebuilt")
    wait_for(
        lambda: victim in services_of(cluster, namespace, stable),
        30,
        f"the stable InferenceService {victim} to be recreated",
    )
    p.wait_status(cluster, namespace, "clf", "every stage Ready again", ready="4/4")
    assert "SnapshotRebuilt" in p.events(cluster, namespace, "clf")

    p.command(cluster, namespace, "clf", "abort", "after-rebuild")
    st = p.wait_status(cluster, namespace, "clf", "the abort to be carried out", phase="Aborted")
    assert st["lastCommand"]["command"] == "abort:after-rebuild"
    assert st["lastCommand"]["result"] == "Accepted"
    assert weights(cluster, namespace, "clf") == {stable: 100}


@pytest.mark.parametrize(
    "resources",
    [None, {"cpu": "0.5", "memory": "1.5Gi"}],
    ids=["defaults", "quantities-kserve-rewrites"],
)
def test_a_reconcile_that_changes_nothing_writes_nothing(
    cluster: Cluster, namespace: str, operator: OperatorProcess, resources: dict | None
) -> None:
    """Also when KServe's webhook stores a quantity in another spelling (``0.5`` as ``500m``,
    ``1.5Gi`` as ``1536Mi``): the same amount is no drift."""
    body = p.classifier("clf", namespace)
    if resources is not None:
        body["spec"]["stages"][1]["resources"].update(resources)
    p.apply(cluster, body)
    p.wait_status(cluster, namespace, "clf", "first revision Healthy", phase="Healthy")
    wait_for(lambda: p.status(cluster, namespace, "clf").get("url"), 20, "status.url")

    def versions() -> dict[str, str]:
        items = [
            *p.children(cluster, namespace, "inferenceservices"),
            *p.children(cluster, namespace, "inferencegraphs"),
        ]
        items.append(p.get(cluster, namespace, "clf"))
        return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}

    def settled() -> bool:
        before = (versions(), api_writes(operator))
        time.sleep(1)
        return (versions(), api_writes(operator)) == before

    wait_for(settled, 30, "the operator to settle")
    before, writes = versions(), api_writes(operator)
    reconciles = operator.counter("pipeline_operator_reconciles_total")
    # Wake the reconcile loop three times without changing anything it owns.
    for i in range(3):
        cluster.kubectl("label", p.PLURAL, "clf", "-n", namespace, f"touch=t{i}", "--overwrite")
    time.sleep(3)
    after = versions()
    assert operator.counter("pipeline_operator_reconciles_total") > reconciles
    assert api_writes(operator) == writes
    assert {k: v for k, v in after.items() if k != "clf"} == {
        k: v for k, v in before.items() if k != "clf"
    }


def test_retired_services_stay_for_the_drain_period_then_go(
    cluster: Cluster, namespace: str, tmp_path: Path, operator_identity: Path
) -> None:
    operator = OperatorProcess(
        cluster, namespace, tmp_path / "operator.log", drain_seconds=8, kubeconfig=operator_identity
    )
    operator.start()
    try:
        stable = deploy_stable(cluster, namespace, {"canary": {"steps": [{"setWeight": 50}]}})
        p.apply(
            cluster,
            p.classifier("clf", namespace, model="bert-v2", canary={"steps": [{"setWeight": 50}]}),
        )
        st = wait_for(
            lambda: (
                (s := p.status(cluster, namespace, "clf")).get("stableRevision") != stable
                and s.get("phase") == "Healthy"
                and s
            ),
            60,
            "the canary to complete",
        )
        assert weights(cluster, namespace, "clf") == {st["stableRevision"]: 100}

        # The graph no longer routes to the old revision; once KServe has rolled the router
        # out, its services are marked retired and stay until the drain period is over.
        def old() -> list[dict]:
            return [
                s
                for s in p.children(cluster, namespace, "inferenceservices")
                if s["metadata"]["labels"]["pipelines.inference.dev/revision"] == stable
            ]

        retired = wait_for(
            lambda: (
                len(services := old()) == 2
                and all(
                    "pipelines.inference.dev/retired-at" in s["metadata"]["annotations"]
                    for s in services
                )
                and services
            ),
            20,
            "the old revision's services to be marked retired",
        )
        assert len(retired) == 2
        wait_for(
            lambda: services_of(cluster, namespace, stable) == [],
            30,
            "the retired services to be deleted after the drain period",
        )
    finally:
        operator.stop()
