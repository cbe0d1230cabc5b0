"""Node pools of the local cluster, read from YAML: fake kwok Nodes (rendered here, pure) and
the real nodes whose kubelets run containers (started by ``node.py``)."""

from __future__ import annotations

import string
from collections.abc import Mapping
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


# Fake nodes carry kwok's own taint: only pods that tolerate it (the capacity scenarios' pools)
# land there, and every other pod goes to a real node.
FAKE_TAINT = Taint(key="kwok.x-k8s.io/node", value="fake", effect="NoSchedule")
FAKE_TOLERATION = {"key": FAKE_TAINT.key, "operator": "Exists", "effect": FAKE_TAINT.effect}


class RealNode(BaseModel):
    """A node whose kubelet runs containers on this machine, in one pool: its pods run on
    the machine's CPU, and the extended resources it advertises (GPUs) are what they are
    scheduled and counted against."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=11)
    pool: str
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    extended_resources: dict[str, str] = Field(default_factory=dict, alias="extendedResources")
    # The images imported into the node's container runtime (there is no registry to pull);
    # ``${KSERVE_VERSION}`` and the tool set's other versions are substituted (``pinned``).
    images: list[str] = Field(default_factory=list)

    def pinned(self, versions: Mapping[str, str]) -> RealNode:
        """This node with the tool set's versions in its image names."""
        images = [string.Template(image).substitute(versions) for image in self.images]
        return self.model_copy(update={"images": images})


class Topology(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    pool_label: str = Field(alias="poolLabel")
    pools: list[NodePool]
    real_nodes: list[RealNode] = Field(default_factory=list, alias="realNodes")

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
        "spec": {"taints": [t.model_dump() for t in [*pool.taints, FAKE_TAINT]]},
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
