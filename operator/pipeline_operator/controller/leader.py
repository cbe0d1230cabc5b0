"""Leader election through a coordination.k8s.io Lease: one replica writes at a time.

Every replica runs its watches and keeps its cache warm, but only the holder of the Lease
reconciles. The holder renews it every ``RETRY`` seconds and stops writing once it has not
renewed for ``RENEW_DEADLINE`` seconds; another replica takes the Lease over only after it has
seen no renewal for the Lease's duration (``LEASE_DURATION``), timed on its own clock from
when it saw the record change (as client-go does), so the two never write at once. A replica
that stops cleanly hands the Lease back at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from pipeline_operator.k8s.client import ConflictError
from pipeline_operator.telemetry import metrics

log = logging.getLogger(__name__)

LEASE_DURATION = 15
RENEW_DEADLINE = 10.0
RETRY = 2.0


class Leases(Protocol):
    def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def write_lease(self, lease: dict[str, Any], create: bool) -> dict[str, Any]: ...


def identity() -> str:
    """This process among the replicas: the pod's name and a random suffix (a restarted
    container is a new candidate, never the holder it replaces)."""
    return f"{os.environ.get('POD_ID') or socket.gethostname()}-{secrets.token_hex(3)}"


def micro_time(at: datetime) -> str:
    """A Lease's MicroTime: RFC 3339 with microseconds, in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Alone:
    """No election: this replica always leads (one replica)."""

    epoch = 0

    def leading(self) -> bool:
        return True

    def window(self) -> float | None:
        """No Lease, no deadline on writes."""
        return None


class Leadership:
    """Holds (or waits for) the Lease ``namespace/name`` as ``holder``.

    ``epoch`` counts the times this replica became the leader: a reconcile loop reads its
    pipeline afresh from the API once per epoch, since the previous leader may have written
    it after the watch last delivered it here.
    """

    def __init__(
        self,
        leases: Leases,
        namespace: str,
        name: str,
        holder: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = leases
        self.namespace = namespace
        self.name = name
        self.holder = holder
        self.clock = clock
        self.epoch = 0
        self._until = 0.0
        """Until when (``clock``) this replica may write."""
        self._seen: tuple[str | None, float] = (None, 0.0)
        """The Lease's resourceVersion when this replica last saw it change, and when."""
        self._lease: dict[str, Any] | None = None
        """The Lease as this replica last wrote it."""
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="lease")
        """Its own thread: renewals never queue behind the API writes of reconciles."""
        self.on_leading: Callable[[], None] = lambda: None
        """Called each time this replica becomes the leader (the loops wake)."""

    def leading(self) -> bool:
        """Whether this replica may write now."""
        return self.clock() < self._until

    def window(self) -> float:
        """Seconds this replica may still write (0: it does not lead)."""
        return max(0.0, self._until - self.clock())

    async def run(self) -> None:
        """Acquire, then renew, the Lease every ``RETRY`` seconds (a standby tries again
        every 1 to 3 seconds), for ever."""
        loop = asyncio.get_running_loop()
        was = False
        while True:
            try:
                await loop.run_in_executor(self._thread, self.try_acquire_or_renew)
            except Exception as err:  # the apiserver unreachable, RBAC: try again
                log.warning("lease %s/%s: %s", self.namespace, self.name, err)
            now = self.leading()
            if now and not was:
                self.epoch += 1
                log.info("leading: lease %s/%s held by %s", self.namespace, self.name, self.holder)
                self.on_leading()
            elif was and not now:
                log.warning("no longer leading: lease %s/%s not renewed", self.namespace, self.name)
                metrics.forget_pipelines()
            metrics.LEADER.set(int(now))
            was = now
            await asyncio.sleep(RETRY if now else RETRY * random.uniform(0.5, 1.5))

    def try_acquire_or_renew(self) -> bool:
        """One attempt (blocking): True when this replica holds the Lease afterwards."""
        started = self.clock()
        lease = self._lease if self.leading() else self.leases.read_lease(self.namespace, self.name)
        if lease is None:
            return self._write(started, self._new(), create=True)
        spec = lease.setdefault("spec", {})
        version = lease["metadata"].get("resourceVersion")
        if version != self._seen[0]:
            self._seen = (version, self.clock())
        other = spec.get("holderIdentity") not in (None, "", self.holder)
        duration = float(spec.get("leaseDurationSeconds") or LEASE_DURATION)
        if other and self.clock() < self._seen[1] + duration:
            return False
        now = micro_time(datetime.now(UTC))
        if spec.get("holderIdentity") != self.holder:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec |= {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": LEASE_DURATION,
            "renewTime": now,
        }
        return self._write(started, lease, create=False)

    def release(self, drain: Callable[[], None]) -> None:
        """Stop writing, wait for the writes in flight (``drain``), then hand the Lease back
        so that another replica takes it over at once."""
        lease, self._until = self._lease, 0.0
        drain()
        metrics.LEADER.set(0)
        if lease is None or lease["spec"].get("holderIdentity") != self.holder:
            return
        lease["spec"] |= {"holderIdentity": None, "leaseDurationSeconds": 1}
        try:
            self.leases.write_lease(lease, create=False)
        except Exception as err:  # it expires anyway
            log.warning("could not hand lease %s/%s back: %s", self.namespace, self.name, err)

    def _new(self) -> dict[str, Any]:
        now = micro_time(datetime.now(UTC))
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": LEASE_DURATION,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }

    def _write(self, started: float, lease: dict[str, Any], create: bool) -> bool:
        try:
            written = self.leases.write_lease(lease, create)
        except ConflictError:
            # Another replica wrote first, or a write of ours whose answer was lost: stop
            # writing now; the next attempt reads the Lease and tells which.
            self._lease, self._until = None, 0.0
            return False
        self._lease = written
        self._seen = (written["metadata"].get("resourceVersion"), started)
        self._until = started + RENEW_DEADLINE
        return True
