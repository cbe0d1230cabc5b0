"""Leader election through a Lease: never two writers, a standby takes over in time."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pipeline_operator.controller.leader import LEASE_DURATION, RENEW_DEADLINE, Leadership
from pipeline_operator.k8s.client import ConflictError
from pipeline_operator.telemetry import metrics


class Leases:
    """An apiserver's Lease store: optimistic concurrency on resourceVersion."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0

    def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.lease)

    def write_lease(self, lease: dict[str, Any], create: bool) -> dict[str, Any]:
        current = (self.lease or {}).get("metadata", {}).get("resourceVersion")
        if (create and self.lease is not None) or (
            not create and lease["metadata"].get("resourceVersion") != current
        ):
            raise ConflictError("409")
        self.version += 1
        self.lease = copy.deepcopy(lease)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def replicas() -> tuple[Leases, Clock, Leadership, Leadership]:
    leases, clock = Leases(), Clock()
    a = Leadership(leases, "ops", "ipl", "a", clock=clock)
    b = Leadership(leases, "ops", "ipl", "b", clock=clock)
    return leases, clock, a, b


def test_one_replica_leads_and_the_other_stands_by(
    replicas: tuple[Leases, Clock, Leadership, Leadership],
) -> None:
    leases, clock, a, b = replicas
    assert a.try_acquire_or_renew() and a.leading()
    assert not b.try_acquire_or_renew() and not b.leading()
    for _ in range(20):  # renewals keep it
        clock.now += 2
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert leases.lease is not None
    assert leases.lease["spec"]["holderIdentity"] == "a"
    assert leases.lease["spec"]["leaseTransitions"] == 0


def test_a_dead_leader_is_replaced_once_its_lease_expired_and_never_before(
    replicas: tuple[Leases, Clock, Leadership, Leadership],
) -> None:
    leases, clock, a, b = replicas
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # b sees a's record now
    # a is killed: it renews no more. It stops writing at its renew deadline...
    clock.now += RENEW_DEADLINE
    assert not a.leading()
    # ...and b waits for the whole lease duration since it saw the record change.
    clock.now += LEASE_DURATION - RENEW_DEADLINE - 0.1
    assert not b.try_acquire_or_renew()
    clock.now += 0.2
    assert b.try_acquire_or_renew() and b.leading()
    assert leases.lease is not None
    assert leases.lease["spec"]["holderIdentity"] == "b"
    assert leases.lease["spec"]["leaseTransitions"] == 1


def test_a_released_lease_is_taken_at_once_and_the_old_leader_writes_no_more(
    replicas: tuple[Leases, Clock, Leadership, Leadership],
) -> None:
    _, clock, a, b = replicas
    a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    drained: list[bool] = []
    a.release(lambda: drained.append(a.leading()))
    assert drained == [False]  # writes stopped before the writes in flight were awaited
    clock.now += 0.5
    assert b.try_acquire_or_renew()
    assert not a.try_acquire_or_renew()


def test_a_new_replica_never_takes_a_held_lease(
    replicas: tuple[Leases, Clock, Leadership, Leadership],
) -> None:
    leases, clock, a, _ = replicas
    a.try_acquire_or_renew()
    clock.now += 30  # long before the newcomer's time, but it has only just seen the record
    a.try_acquire_or_renew()
    newcomer = Leadership(leases, "ops", "ipl", "c", clock=clock)
    assert not newcomer.try_acquire_or_renew()
    clock.now += 2
    a.try_acquire_or_renew()
    assert not newcomer.try_acquire_or_renew()


def test_of_two_standbys_racing_for_an_expired_lease_one_leads(
    replicas: tuple[Leases, Clock, Leadership, Leadership],
) -> None:
    leases, clock, a, b = replicas
    c = Leadership(leases, "ops", "ipl", "c", clock=clock)
    for replica in (a, b, c):
        replica.try_acquire_or_renew()
    clock.now += LEASE_DURATION + 1  # a died
    read = leases.read_lease

    def racing(namespace: str, name: str) -> dict[str, Any] | None:
        """b takes the Lease over while c is between its read and its write."""
        seen = read(namespace, name)
        leases.read_lease = read  # type: ignore[method-assign]
        assert b.try_acquire_or_renew()
        return seen

    leases.read_lease = racing  # type: ignore[method-assign]
    assert not c.try_acquire_or_renew() and not c.leading()
    assert b.leading()


def test_a_renewal_that_meets_a_conflict_stops_writing_and_reads_the_lease_again(
    replicas: tuple[Leases, Clock, Leadership, Leadership],
) -> None:
    """A renewal whose answer was lost: the Lease moved on under this replica's own name.
    It stops writing at once, then reads the Lease, sees itself, and renews (no create)."""
    leases, clock, a, _ = replicas
    assert a.try_acquire_or_renew()
    assert leases.lease is not None
    leases.version += 1  # the write whose answer never came
    leases.lease["metadata"]["resourceVersion"] = str(leases.version)
    clock.now += 2
    assert not a.try_acquire_or_renew()
    assert not a.leading()
    clock.now += 1
    assert a.try_acquire_or_renew() and a.leading()
    assert leases.lease["spec"]["leaseTransitions"] == 0


def test_a_replica_that_stops_leading_drops_the_pipelines_metrics() -> None:
    metrics.export_pipeline("ml", "clf", 1, {"r1": 80, "r2": 20}, "Paused")
    assert (
        REGISTRY.get_sample_value(
            "pipeline_operator_traffic_weight",
            {"namespace": "ml", "pipeline": "clf", "revision": "r2"},
        )
        == 20
    )
    metrics.forget_pipelines()
    assert (
        REGISTRY.get_sample_value(
            "pipeline_operator_traffic_weight",
            {"namespace": "ml", "pipeline": "clf", "revision": "r2"},
        )
        is None
    )
    assert (
        REGISTRY.get_sample_value(
            "pipeline_operator_rollout_step", {"namespace": "ml", "pipeline": "clf"}
        )
        is None
    )
