"""A real local Kubernetes control plane for tests and the demo, run by ``kwokctl``.

``kwokctl create cluster --runtime binary`` starts etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok-controller as local processes from the pinned
tool set, so nothing is downloaded. Node pools are fake kwok Nodes (see ``topology.yaml``):
the real scheduler binds pods to them and kwok marks the bound pods Running. Beside them, the
real nodes of the topology (``node.py``) are kubelets on this machine that run containers;
kwok manages only its own nodes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.harness.kserve import KServe
from tests.harness.node import NODE_IP, SERVICE_RANGE, RealNodes
from tests.harness.processes import ClusterError, free_port, log, process_running, wait_until
from tests.harness.tools import ToolSet
from tests.harness.topology import Topology

CRD_DIR = Path(__file__).resolve().parents[2] / "manifests" / "crds"
MODELS_ROOT = Path("/var/lib/models")
DEFAULT_HOME = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "inference-pipelines"
)


class Cluster:
    """Any cluster reachable through a kubeconfig, driven with the pinned kubectl."""

    def __init__(self, tools: ToolSet, kubeconfig: Path) -> None:
        self.tools = tools
        self.kubeconfig = kubeconfig

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this cluster."""
        cmd = [str(self.tools.binary("kubectl")), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed:\n{result.stderr.strip()}")
        return result

    def patch_node_status(self, name: str, status: dict[str, Any]) -> None:
        """Merge ``status`` into a Node's status (fake nodes' conditions, advertised GPUs)."""
        self.kubectl(
            "patch", "node", name, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": status}),
        )  # fmt: skip

    def provide_claim(self, namespace: str, claim: str = "models") -> None:
        """A bound PersistentVolumeClaim for ``pvc://<claim>/...`` storage URIs.

        The PersistentVolume is pre-bound to the claim (``claimRef``), so kube-controller-
        manager binds the two without a provisioner.
        """
        volume = f"{claim}-{namespace}"
        objects = [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": volume},
                "spec": {
                    "capacity": {"storage": "100Gi"},
                    "accessModes": ["ReadOnlyMany", "ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "hostPath": {"path": str(claim_path(namespace, claim))},
                    "claimRef": {"namespace": namespace, "name": claim},
                },
            },
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": namespace},
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "storageClassName": "",
                    "volumeName": volume,
                    "resources": {"requests": {"storage": "100Gi"}},
                },
            },
        ]
        self.kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(o) for o in objects))

    def apply_crds(self, paths: Sequence[Path]) -> None:
        """Install CRDs, and the admission policies that come with them, with server-side apply
        (KServe's CRDs are too large for client-side)."""
        if not paths:
            return
        args = ["apply", "--server-side", "--force-conflicts", "--field-manager", "local-cluster"]
        for path in paths:
            args += ["-f", str(path)]
        applied = self.kubectl(*args, "-o", "name").stdout.split()
        names = [n for n in applied if n.startswith("customresourcedefinition")]
        # `kubectl wait` errors out while a new CRD has no conditions yet: retry it.
        established = ("wait", "--for=condition=Established", "--timeout=10s", *names)
        _wait(
            lambda: self.kubectl(*established, check=False).returncode == 0,
            60,
            "the CRDs to be established",
        )
        log(f"installed {len(names)} CRDs")


class LocalCluster(Cluster):
    """One kwokctl cluster with its own working directory and kubeconfig, and KServe's
    controller manager and webhooks (``with_kserve``) started and stopped with it."""

    def __init__(
        self,
        tools: ToolSet,
        name: str = "pipelines",
        home: Path = DEFAULT_HOME,
        with_kserve: bool = True,
    ) -> None:
        super().__init__(tools, home / f"{name}.kubeconfig")
        self.name = name
        self.home = home
        self._kwok_workdir = home / "kwok"
        self.kserve = KServe(self, home / f"{name}.kserve") if with_kserve else None
        self.pool_label = "pipelines.inference.dev/pool"
        self.nodes = RealNodes(self, [])

    def _kwokctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.tools.binary("kwokctl")), "--name", self.name, *args]
        env = {**os.environ, "KWOK_WORKDIR": str(self._kwok_workdir)}
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise ClusterError(f"{' '.join(cmd[1:])} failed:\n{result.stderr.strip()}")
        return result

    @property
    def _cluster_dir(self) -> Path:
        return self._kwok_workdir / "clusters" / self.name

    @property
    def pki_dir(self) -> Path:
        """The cluster's CA and admin certificate, as kwokctl made them."""
        return self._cluster_dir / "pki"

    def pids(self) -> list[int]:
        """PIDs of the cluster's component processes, read from kwokctl's pid files."""
        return list(self._component_pids().values())

    def _component_pids(self) -> dict[str, int]:
        pids = {}
        for pid_file in self._cluster_dir.glob("pids/*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pids[pid_file.stem] = int(pid_file.read_text().strip())
        return pids

    def _create(self, config: Path, timeout: float) -> None:
        """``kwokctl create cluster``, watched: a component that exits while the cluster
        starts (a port taken, a bad flag) fails the start at once, with its log's last lines,
        instead of leaving kwokctl to wait out its timeout."""
        cmd = [str(self.tools.binary("kwokctl")), "--name", self.name, "create", "cluster"]
        cmd += ["--config", str(config), "--kubeconfig", str(self.kubeconfig)]
        cmd += ["--wait", f"{int(timeout)}s", "--timeout", f"{int(timeout)}s"]
        env = {**os.environ, "KWOK_WORKDIR": str(self._kwok_workdir)}
        output_path = self.home / f"{self.name}.kwokctl.log"
        with (
            output_path.open("w", encoding="utf-8") as output,
            subprocess.Popen(cmd, env=env, stdout=output, stderr=subprocess.STDOUT) as create,
        ):
            started: dict[str, int] = {}
            while create.poll() is None:
                started.update(self._component_pids())
                exited = [name for name, pid in started.items() if not process_running(pid)]
                if exited:
                    create.kill()
                    create.wait()
                    raise ClusterError(
                        f"{exited[0]} exited while cluster {self.name!r} started; the end of "
                        f"its log:\n{self._log_tail(exited[0])}"
                    )
                time.sleep(0.5)
        if create.returncode != 0:
            raise ClusterError(f"kwokctl create cluster failed: {output_path.read_text().strip()}")

    def _log_tail(self, component: str, lines: int = 15) -> str:
        try:
            text = (self._cluster_dir / "logs" / f"{component}.log").read_text(errors="replace")
        except OSError as err:
            return f"(no log: {err})"
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle -------------------------------------------------------------------------

    def exists(self) -> bool:
        return self._cluster_dir.exists()

    def healthy(self) -> bool:
        if not self.kubeconfig.exists():
            return False
        result = self.kubectl("get", "--raw", "/readyz", check=False, timeout=10)
        return result.returncode == 0 and result.stdout.strip() == "ok"

    def up(
        self, topology: Topology | None = None, crds: Sequence[Path] = (), timeout: float = 240
    ) -> None:
        """Start the cluster (or reuse a healthy one), then install CRDs and node pools."""
        self.home.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        if topology is not None:
            self.pool_label = topology.pool_label
            self.nodes = RealNodes(self, topology.real_nodes)
        if self.exists() and not self.healthy():
            log(f"cluster {self.name!r} exists but is not healthy: recreating it")
            self.down()
        if self.exists():
            log(f"cluster {self.name!r} is already up")
        else:
            log(f"creating cluster {self.name!r} (kwokctl, binary runtime)")
            config = self.home / f"{self.name}.kwokctl.yaml"
            config.write_text(yaml.safe_dump_all(self._kwokctl_config()), encoding="utf-8")
            try:
                self._create(config, timeout)
            except ClusterError:
                self.down()
                raise
        _wait(lambda: self.healthy(), timeout, "the apiserver to report /readyz ok")
        _wait(self._default_service_account, timeout, "the default ServiceAccount")
        self.apply_crds([*self.tools.kserve_crds, *crds])
        if topology is not None:
            self.apply_nodes(topology)
        try:
            self.nodes.start()
        except (ClusterError, TimeoutError) as err:
            self.down()
            raise ClusterError(f"the real nodes did not start: {err}") from None
        if self.kserve is not None:
            try:
                self.kserve.start()
            except (ClusterError, TimeoutError) as err:
                self.down()
                raise ClusterError(f"KServe did not start: {err}") from None
        log(
            f"cluster {self.name!r} ready in {time.monotonic() - started:.1f}s "
            f"(KUBECONFIG={self.kubeconfig})"
        )

    def down(self) -> None:
        """Stop the real nodes (KServe's pods with them), delete the cluster, and make sure
        none of its processes outlive it."""
        self.nodes.stop()
        pids = self.pids()
        if self.exists():
            log(f"deleting cluster {self.name!r}")
            self._kwokctl("delete", "cluster", check=False)
        deadline = time.monotonic() + 15
        while any(process_running(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in filter(process_running, pids):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                log(f"killed leftover process {pid}")
        self.kubeconfig.unlink(missing_ok=True)

    def _kwokctl_config(self) -> list[dict[str, Any]]:
        binary = self.tools.binary
        pki = self.pki_dir
        versions = self.tools.versions()
        return [
            {
                "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
                "kind": "KwokctlConfiguration",
                "options": {
                    "runtime": "binary",
                    "kubeVersion": versions["KUBERNETES_VERSION"],
                    "etcdVersion": versions["ETCD_VERSION"],
                    "kubeApiserverBinary": str(binary("kube-apiserver")),
                    "kubeControllerManagerBinary": str(binary("kube-controller-manager")),
                    "kubeSchedulerBinary": str(binary("kube-scheduler")),
                    "kubectlBinary": str(binary("kubectl")),
                    "etcdBinary": str(binary("etcd")),
                    "kwokControllerBinary": str(binary("kwok")),
                    # Ports the system has free now (kwokctl's own picks are the same for
                    # two clusters created at once: the second's apiserver fails to bind).
                    "kubeApiserverPort": free_port(),
                    "etcdPort": free_port(),
                    "etcdPeerPort": free_port(),
                    "kubeControllerManagerPort": free_port(),
                    "kubeSchedulerPort": free_port(),
                    "kwokControllerPort": free_port(),
                    "kubeAuthorization": True,
                    "kubeAdmission": True,
                    "disableQPSLimits": True,
                    # Pods reach the apiserver through the `kubernetes` Service, real nodes'
                    # kubelets through the node address: both must be in its certificate.
                    "kubeApiserverCertSANs": [_first_address(SERVICE_RANGE), NODE_IP],
                },
                "componentsPatches": [
                    {
                        "name": "kube-apiserver",
                        "extraArgs": [
                            {"key": "service-cluster-ip-range", "value": SERVICE_RANGE},
                            # `kubectl logs` and `exec` on real nodes: the apiserver
                            # authenticates to kubelets with the cluster's admin certificate.
                            {"key": "kubelet-client-certificate", "value": str(pki / "admin.crt")},
                            {"key": "kubelet-client-key", "value": str(pki / "admin.key")},
                            # A real node's name resolves nowhere; its InternalIP is the node
                            # address.
                            {"key": "kubelet-preferred-address-types", "value": "InternalIP"},
                        ],
                    },
                    {
                        "name": "kube-controller-manager",
                        "extraArgs": [
                            {"key": "service-cluster-ip-range", "value": SERVICE_RANGE},
                        ],
                    },
                    {
                        # kwok runs the pods of its own nodes only, never a real node's.
                        "name": "kwok-controller",
                        "extraArgs": [
                            {"key": "manage-all-nodes", "value": "false"},
                            {
                                "key": "manage-nodes-with-annotation-selector",
                                "value": "kwok.x-k8s.io/node=fake",
                            },
                        ],
                    },
                ],
            }
        ]

    # -- contents --------------------------------------------------------------------------

    def apply_nodes(self, topology: Topology) -> None:
        """Create (or update) the fake nodes of every pool and wait until they are Ready."""
        nodes = topology.nodes()
        for node in nodes:
            status = node.pop("status")
            self.kubectl(
                "apply",
                "--server-side",
                "--field-manager",
                "local-cluster",
                "-f",
                "-",
                stdin=json.dumps(node),
            )
            self.patch_node_status(node["metadata"]["name"], status)
        self.kubectl(
            "wait",
            "--for=condition=Ready",
            "--timeout=120s",
            *[f"node/{n['metadata']['name']}" for n in nodes],
        )
        log(f"{len(nodes)} nodes ready in pools {', '.join(p.name for p in topology.pools)}")

    def _default_service_account(self) -> bool:
        return (
            self.kubectl("get", "serviceaccount", "default", check=False, timeout=10).returncode
            == 0
        )


def claim_path(namespace: str, claim: str = "models") -> Path:
    """The machine directory behind a namespace's claim (the real nodes mount it)."""
    return MODELS_ROOT / f"{claim}-{namespace}"


def _first_address(cidr: str) -> str:
    """The first address of a range: the `kubernetes` Service's ClusterIP in the Service range."""
    return str(next(ipaddress.ip_network(cidr).hosts()))


def _wait(ready: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        wait_until(ready, timeout, what)
    except TimeoutError as err:
        raise ClusterError(str(err)) from None


@contextlib.contextmanager
def running_cluster(
    cluster: LocalCluster, topology: Topology | None = None, crds: Sequence[Path] = ()
) -> Iterator[LocalCluster]:
    """Start ``cluster`` for the duration of the block and always tear it down."""
    try:
        cluster.up(topology, crds)
        yield cluster
    finally:
        cluster.down()
