"""Two replicas, one leader: the standby takes over from a killed leader mid-rollout.

Both operators run with the chart's RBAC for two replicas (a Lease in the namespace) and
watch the same namespace. Only the holder of the Lease writes; when it is killed (SIGKILL,
no hand-back) the standby takes the Lease once it has expired and carries the rollout on
from the step it was at. A replica that joins while another leads stands by.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pipelines as p
from tests.harness import Cluster
from tests.harness.chart_identity import ChartIdentity
from tests.harness.operator_process import OperatorProcess
from tests.operator.conftest import DRAIN_SECONDS
from tests.operator.test_canary import deploy_stable, weights
from tests.support import wait_for

pytestmark = pytest.mark.cluster

STEPS = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]
LEASE = "pipelines-leader"
TAKEOVER = 60
"""Seconds the standby may take to lead after the leader's death (the Lease lasts 15)."""


@pytest.fixture
def replicas(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[list[OperatorProcess]]:
    """Two operators for ``namespace`` electing a leader through the Lease ``LEASE``."""
    identity = ChartIdentity(cluster, namespace, tmp_path, replicas=2)
    kubeconfig = identity.create()
    processes = [
        OperatorProcess(
            cluster,
            namespace,
            tmp_path / f"operator-{i}.log",
            drain_seconds=DRAIN_SECONDS,
            kubeconfig=kubeconfig,
            extra_args=["--lease", LEASE, "--lease-namespace", namespace],
        )
        for i in range(2)
    ]
    yield processes
    for process in processes:
        process.stop()
    identity.delete()


def leader_gauge(process: OperatorProcess) -> float | None:
    """1 while the replica leads, 0 while it stands by, None before it serves metrics."""
    try:
        return process.counter("pipeline_operator_leader")
    except OSError:
        return None


def leading(process: OperatorProcess) -> bool:
    return leader_gauge(process) == 1


def writes(process: OperatorProcess) -> float:
    return process.counter("pipeline_operator_api_writes_total")


def test_the_standby_takes_over_from_a_killed_leader_at_the_same_step(
    cluster: Cluster, namespace: str, replicas: list[OperatorProcess]
) -> None:
    leader, standby = replicas
    leader.start()
    wait_for(lambda: leading(leader), 30, "the first replica to take the Lease")
    standby.start()
    wait_for(lambda: leader_gauge(standby) == 0, 30, "the standby's metrics")

    stable = deploy_stable(cluster, namespace, {"canary": {"steps": STEPS}})
    p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", canary={"steps": STEPS}))
    st = p.wait_status(
        cluster, namespace, "clf", "canary paused at 20%", canaryWeight=20, phase="Paused"
    )
    canary = st["canaryRevision"]
    names = sorted(s["metadata"]["name"] for s in p.children(cluster, namespace, "isvc"))
    assert writes(leader) > 0
    assert writes(standby) == 0, "the standby wrote while the leader led"
    assert not leading(standby)

    leader.kill()
    killed = time.monotonic()
    p.command(cluster, namespace, "clf", "promote", "after-handover")
    wait_for(lambda: leading(standby), TAKEOVER, "the standby to take the Lease over")
    print(f"the standby led {time.monotonic() - killed:.1f}s after the leader's SIGKILL")

    st = p.wait_status(
        cluster, namespace, "clf", "the promote handled by the new leader", canaryWeight=60
    )
    assert (st["stableRevision"], st["canaryRevision"], st["currentStepIndex"]) == (
        stable,
        canary,
        3,
    )
    assert st["lastCommand"]["command"] == "promote:after-handover"
    assert sorted(s["metadata"]["name"] for s in p.children(cluster, namespace, "isvc")) == names
    assert weights(cluster, namespace, "clf") == {stable: 40, canary: 60}
    assert p.events(cluster, namespace, "clf").count("RolloutStarted") == 1

    # The killed replica comes back while the other leads: it stands by and writes nothing.
    leader.start()
    wait_for(lambda: leader_gauge(leader) == 0, 30, "the rejoined replica's metrics")
    p.command(cluster, namespace, "clf", "promote", "while-two-run")
    st = p.wait_status(cluster, namespace, "clf", "the rollout's end", phase="Healthy")
    assert st["stableRevision"] == canary
    assert writes(leader) == 0, "a replica wrote while another held the Lease"
    assert leading(standby) and not leading(leader)
