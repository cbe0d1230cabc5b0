"""Node pools of the local cluster, read from YAML, rendered as fake kwok Nodes (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TOPOLOGY = Path(__file__).with_name("topology.yaml")


class Taint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class NodePool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=50)
    count: int = Field(ge=1, le=1000)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    capacity: dict[str, str]


class Topology(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool_label: str = Field(alias="poolLabel")
    pools: list[NodePool]

    @classmethod
    def load(cls, path: Path = DEFAULT_TOPOLOGY) -> Topology:
        return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))

    def nodes(self) -> list[dict[str, Any]]:
        """The Node objects of every pool, annotated so that kwok manages them."""
        return [_node(self.pool_label, pool, i) for pool in self.pools for i in range(pool.count)]


def _node(pool_label: str, pool: NodePool, index: int) -> dict[str, Any]:
    name = f"{pool.name}-{index}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                **pool.labels,
                pool_label: pool.name,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "spec": {"taints": [t.model_dump() for t in pool.taints]},
        "status": {
            "capacity": dict(pool.capacity),
            "allocatable": dict(pool.capacity),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": "fake",
                "kubeProxyVersion": "fake",
            },
        },
    }
