"""What the classes of the Gateways pipelines attach to support, read through the API when a
pipeline's steps depend on it and kept a while: a reconcile takes what is known (no I/O) and
has the rest read first (in the API pool)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pipeline_operator.core.observe.gateways import GatewayKey, GatewaySupport, read_support
from pipeline_operator.k8s.client import Kube, RefusedError

log = logging.getLogger(__name__)

SUPPORT_TTL = 30.0
"""Seconds a Gateway's support is kept before it is read again."""


@dataclass
class GatewaySupports:
    kube: Kube
    ttl: float = SUPPORT_TTL
    clock: Callable[[], float] = time.monotonic
    _known: dict[GatewayKey, tuple[float, GatewaySupport]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def known(self, keys: Iterable[GatewayKey]) -> tuple[list[GatewaySupport], list[GatewayKey]]:
        """The supports of ``keys`` read within the last ``ttl`` seconds, and the keys to
        read."""
        now = self.clock()
        fresh, due = [], []
        with self._lock:
            for key in keys:
                entry = self._known.get(key)
                if entry is not None and now - entry[0] < self.ttl:
                    fresh.append(entry[1])
                else:
                    due.append(key)
        return fresh, due

    def read(self, keys: Iterable[GatewayKey]) -> None:
        """Read each Gateway and its class; a refused read is kept as unknown, with why."""
        for key in keys:
            support = self._read(key)
            with self._lock:
                self._known[key] = (self.clock(), support)

    def _read(self, key: GatewayKey) -> GatewaySupport:
        namespace, name = key
        try:
            gateway = self.kube.read_gateway(namespace, name)
            class_name = (gateway or {}).get("spec", {}).get("gatewayClassName")
            gateway_class = self.kube.read_gateway_class(class_name) if class_name else None
        except RefusedError as err:
            why = (
                f"reading Gateway {namespace}/{name} and its GatewayClass: refused "
                f"({err.status}): {err}"
            )
            log.warning("%s", why)
            return GatewaySupport(key, unknown=why, refused=True)
        return read_support(key, gateway, gateway_class)
