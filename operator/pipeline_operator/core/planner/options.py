"""Inputs of the planner besides the spec and status: the owner and the cluster's choices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Owner:
    """The InferencePipeline the planned children belong to."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True)
class PlanOptions:
    """Cluster-wide choices of the operator; the defaults suit a plain KServe install.

    ``deployment_mode`` is written as the ``serving.kserve.io/deploymentMode`` annotation
    of every child (``None`` leaves it to KServe's configured default). ``router_*`` place
    and size the InferenceGraph router pods (the operator's ``--router-*`` settings).
    """

    deployment_mode: str | None = "Standard"
    router_node_selector: Mapping[str, str] = field(default_factory=dict)
    router_tolerations: tuple[Mapping[str, Any], ...] = ()
    router_affinity: Mapping[str, Any] | None = None
    router_resources: Mapping[str, Any] | None = None
    router_min_replicas: int | None = None
    router_max_replicas: int | None = None
    router_timeout_seconds: int | None = None


class PlanError(ValueError):
    """The spec snapshots and status cannot be turned into KServe objects."""


class MissingRevisionError(PlanError, KeyError):
    """An active revision has no spec snapshot."""

    def __init__(self, revision: str) -> None:
        super().__init__(f"no spec snapshot for active revision {revision!r}")
        self.revision = revision

    def __str__(self) -> str:
        return str(self.args[0])
