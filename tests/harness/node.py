"""Real nodes of the local cluster: kubelets that run the kit's images in containers.

Each real node is a kubelet built from the pinned Kubernetes module, run on this machine
against the local control plane, with a containerd of its own (Debian's binary, CRI plugin,
its own socket, root and state) and Debian's CNI plugins (a bridge per node). One kube-proxy
(iptables mode) gives the machine's network namespace the cluster's Services, and one CoreDNS
(built from its Go module, kubernetes plugin) answers the cluster's names for every pod. No
container is privileged: what a kubelet needs of the machine (cgroups, network namespaces,
iptables) it gets by running on it as root.

Choices this machine imposes, each checked in a trial (docs/operations.md has the story):
- the CRI gives sandboxes a negative ``oom_score_adj``, which needs CAP_SYS_RESOURCE, absent
  from this machine's bounding set: ``restrict_oom_score_adj`` keeps it within reach;
- the kubelet refuses a loopback node IP: every node uses the address of an interface of its
  own (a bridge with no port), reachable from pods (through their bridge's gateway) and from
  nothing off the machine;
- traffic to Service and pod ranges that nothing here answers must not leave the machine:
  those ranges (kwok's fake pods' included) are routed to that interface (which drops what
  it is sent) beneath the bridges' own routes and kube-proxy's rewrites, and pods'
  traffic to anything but pods and this machine is dropped.

The nodes are the machine's: one cluster at a time owns them (``owner`` in the state file).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.harness.processes import (
    ClusterError,
    answers_ok,
    find_processes,
    free_port,
    log,
    process_running,
    terminate,
    wait_until,
)
from tests.harness.topology import RealNode

if TYPE_CHECKING:
    from tests.harness.cluster import LocalCluster

# The address every real node, the cluster DNS and the kubelets' servers use: an interface's
# of its own, never routed off the machine.
NODE_INTERFACE = "ipl0"
NODE_IP = "10.250.0.1"
POD_RANGE = "10.244.0.0/16"
SERVICE_RANGE = "10.96.0.0/16"
# The addresses kwok gives its fake pods (its default range): nothing answers there.
FAKE_POD_RANGE = "10.0.0.0/24"
CLUSTER_DOMAIN = "cluster.local"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"
CNI_PLUGINS = Path("/usr/lib/cni")
RUN_DIR = Path("/run/inference-pipelines")
# Each node's containerd root (its images): beside Docker's, which they are imported from, and
# out of the home directory's caches (a torch image's layers unpacked per GPU node are GBs).
NODE_STORE = Path(os.environ.get("INFERENCE_PIPELINES_NODE_STORE", "/var/lib/inference-pipelines"))
# What the real nodes need of the machine, and the Debian package each comes from.
PREREQUISITES = {
    "containerd": "containerd",
    "runc": "runc",
    "ip": "iproute2",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "docker": "docker.io",
}


def check_prerequisites() -> None:
    """Fail with the packages to install when a program the real nodes need is missing."""
    missing = {pkg for prog, pkg in PREREQUISITES.items() if shutil.which(prog) is None}
    if not (CNI_PLUGINS / "bridge").exists():
        missing.add("containernetworking-plugins")
    if os.geteuid() != 0:
        raise ClusterError("real nodes run kubelets and containerd: they need root")
    if missing:
        raise ClusterError(
            "real nodes need Debian packages that are not installed: "
            f"apt-get install {' '.join(sorted(missing))}"
        )


@dataclass(frozen=True)
class NodePaths:
    """Where one node keeps its files: images persist across clusters, state does not."""

    name: str

    @property
    def root(self) -> Path:
        return NODE_STORE / "nodes" / self.name

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd"

    @property
    def run(self) -> Path:
        return RUN_DIR / self.name

    @property
    def socket(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def kubelet_dir(self) -> Path:
        return self.run / "kubelet"

    @property
    def cni_dir(self) -> Path:
        return self.run / "cni"

    @property
    def pod_logs(self) -> Path:
        """The node's pod logs. Never one directory for all: a kubelet removes the log
        directories of pods it does not run, so kubelets sharing /var/log/pods delete each
        other's pods' logs (``kubectl logs`` of a finished pod then finds none)."""
        return self.run / "pod-logs"

    @property
    def bridge(self) -> str:
        return f"ipl-{self.name}"[:15]


def containerd_config(paths: NodePaths) -> str:
    """containerd's configuration for one node: CRI on, sandboxes within this machine's caps."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return "\n".join(
        [
            "version = 2",
            f'root = "{paths.containerd_root}"',
            f'state = "{paths.run / "containerd-state"}"',
            "[grpc]",
            f'  address = "{paths.socket}"',
            "[ttrpc]",
            f'  address = "{paths.socket}.ttrpc"',
            '[plugins."io.containerd.internal.v1.opt"]',
            f'  path = "{paths.run / "opt"}"',
            f"[{cri}]",
            f'  sandbox_image = "{SANDBOX_IMAGE}"',
            "  restrict_oom_score_adj = true",
            "  enable_cdi = false",
            f"[{cri}.containerd]",
            '  snapshotter = "overlayfs"',
            '  default_runtime_name = "runc"',
            f"[{cri}.containerd.runtimes.runc]",
            '  runtime_type = "io.containerd.runc.v2"',
            f"[{cri}.containerd.runtimes.runc.options]",
            "  SystemdCgroup = false",
            f"[{cri}.cni]",
            f'  bin_dir = "{CNI_PLUGINS}"',
            f'  conf_dir = "{paths.cni_dir}"',
            "",
        ]
    )


def cni_config(paths: NodePaths, subnet: str) -> dict[str, Any]:
    """A bridge per node with host-local addresses; the firewall plugin opens the machine's
    FORWARD chain (Docker's policy drops) to each pod's traffic (and ``prepare_network`` to
    the pod range's)."""
    return {
        "cniVersion": "1.0.0",
        "name": f"ipl-{paths.name}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": paths.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.run / "ipam"),
                },
            },
            {"type": "firewall", "backend": "iptables"},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(
    node: RealNode, paths: NodePaths, ports: dict[str, int], client_ca: Path
) -> dict[str, Any]:
    """The kubelet's configuration: cgroupfs under a root of its own, the cluster DNS, clients
    authenticated by the cluster's CA and authorized by the apiserver."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": ports["kubelet"],
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": ports["healthz"],
        "readOnlyPort": 0,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{paths.bridge}",
        "containerRuntimeEndpoint": f"unix://{paths.socket}",
        "clusterDNS": [NODE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "failSwapOn": False,
        # Pods request little CPU to share a 2-core machine, and may use all of it.
        "cpuCFSQuota": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(client_ca)},
        },
        "authorization": {"mode": "Webhook"},
        "serializeImagePulls": False,
        # Images are imported, never pulled: nothing may collect them, and a busy disk must
        # not evict the tests' pods.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "1%"},
        "registerWithTaints": [t.model_dump() for t in node.taints],
        "maxPods": 110,
        "shutdownGracePeriod": "0s",
        "resolvConf": "/etc/resolv.conf",
        "podLogsDir": str(paths.pod_logs),
    }


def corefile(kubeconfig: Path) -> str:
    """CoreDNS answering the cluster domain from the API, on the node address only."""
    return (
        f".:53 {{\n  bind {NODE_IP}\n  errors\n"
        f"  kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
        f"    kubeconfig {kubeconfig}\n    pods insecure\n"
        "    fallthrough in-addr.arpa ip6.arpa\n  }\n  cache 5\n}\n"
    )


def qualified(image: str) -> str:
    """An image reference as containerd lists it (Docker Hub's implied registry spelled out)."""
    first, _, rest = image.partition("/")
    if not rest:
        return f"docker.io/library/{image}"
    if "." in first or ":" in first or first == "localhost":
        return image
    return f"docker.io/{image}"


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
    return result


def prepare_network() -> None:
    """The dummy node address, the catch-all routes, and the kernel settings pods need
    (idempotent: it runs before every start)."""
    if run("ip", "link", "show", NODE_INTERFACE, check=False).returncode != 0:
        # A bridge with no port: like a dummy interface (which kernels without the module
        # lack), it holds a local address and drops whatever is routed to it.
        run("ip", "link", "add", NODE_INTERFACE, "type", "bridge")
    run("ip", "link", "set", NODE_INTERFACE, "up")
    run("ip", "addr", "replace", f"{NODE_IP}/32", "dev", NODE_INTERFACE)
    for cidr in (POD_RANGE, SERVICE_RANGE, FAKE_POD_RANGE):
        run("ip", "route", "replace", cidr, "dev", NODE_INTERFACE, "metric", "1000")
    if not Path("/proc/sys/net/bridge").exists():
        run("modprobe", "br_netfilter", check=False)
    for key in ("net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"):
        Path("/proc/sys", key).write_text("1", encoding="ascii")
    # Pods reach each other, Services and this machine, and nothing beyond it. Pod to pod is
    # accepted by one rule of the range, not only by the firewall plugin's rules per pod
    # address: the delete of a sandbox left by an earlier cluster removes the rules of its
    # address, which a pod of this cluster may have been given again (its requests, even on
    # its own bridge, were then dropped by Docker's FORWARD policy).
    for rule in (
        ["-s", POD_RANGE, "!", "-d", POD_RANGE, "-j", "DROP"],
        ["-s", POD_RANGE, "-d", POD_RANGE, "-j", "ACCEPT"],
    ):
        if run("iptables", "-C", "FORWARD", *rule, check=False).returncode != 0:
            run("iptables", "-I", "FORWARD", "1", *rule)


def cgroup_root_create(name: str) -> None:
    """The kubelet's cgroupRoot must exist in every v1 hierarchy (or the unified one)."""
    base = Path("/sys/fs/cgroup")
    for hierarchy in base.iterdir():
        if hierarchy.is_dir() and not hierarchy.is_symlink() and hierarchy.name != "unified":
            with contextlib.suppress(OSError):
                (hierarchy / name).mkdir(exist_ok=True)


def kill_cgroup(name: str) -> None:
    """SIGKILL every process left in the node's cgroups (its containers), then remove them."""
    for _ in range(3):
        pids: set[int] = set()
        for procs in Path("/sys/fs/cgroup/pids", name).rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in procs.read_text().split())
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        top = hierarchy / name
        if top.is_dir():
            for child in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if child.is_dir():
                    with contextlib.suppress(OSError):
                        child.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()


def unmount_under(path: Path) -> None:
    """Lazily unmount whatever a node left mounted below ``path`` (sandboxes, rootfs)."""
    prefix = str(path)
    mounts = Path("/proc/mounts").read_text().splitlines()
    targets = [m.split()[1] for m in mounts if m.split()[1].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        run("umount", "-l", target, check=False)


class RealNodes:
    """The real nodes of one local cluster, their kube-proxy and CoreDNS: started after the
    control plane, stopped before it; the processes outlive the Python object (their pids
    are in ``state``)."""

    def __init__(self, cluster: LocalCluster, nodes: list[RealNode]) -> None:
        self.cluster = cluster
        versions = cluster.tools.versions() if nodes else {}
        self.nodes = [node.pinned(versions) for node in nodes]
        self.state_path = RUN_DIR / "nodes.json"
        self.workdir = cluster.home / f"{cluster.name}.nodes"

    def paths(self, node: RealNode) -> NodePaths:
        return NodePaths(node.name)

    # -- state -----------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.state_path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict[str, Any]) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        self.state_path.write_text(json.dumps(state, indent=2), encoding="utf-8")

    def running(self) -> bool:
        state = self._state()
        return state.get("owner") == self.cluster.name and all(
            process_running(pid) for pid in state.get("pids", {}).values()
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 180) -> None:
        """Start containerd, a kubelet per node, kube-proxy and CoreDNS; wait until every
        node is Ready."""
        if not self.nodes:
            return
        if self.running() and self.healthy():
            log(f"real nodes {', '.join(n.name for n in self.nodes)} are already up")
            return
        check_prerequisites()
        self._take_over()
        started = time.monotonic()
        prepare_network()
        self.workdir.mkdir(parents=True, exist_ok=True)
        pids: dict[str, int] = {}
        ports: dict[str, dict[str, int]] = {}
        state = {
            "owner": self.cluster.name,
            "nodes": [n.name for n in self.nodes],
            "pids": pids,
            "ports": ports,
        }
        for index, node in enumerate(self.nodes):
            pids[f"containerd-{node.name}"] = self._start_containerd(self.paths(node), index)
            self._save(state)
        for node in self.nodes:
            self._wait_containerd(self.paths(node), timeout)
            self.import_images(node)
        for node in self.nodes:
            ports[node.name] = {"kubelet": free_port(), "healthz": free_port()}
            pids[f"kubelet-{node.name}"] = self._start_kubelet(node, ports[node.name])
            self._save(state)
        pids["kube-proxy"] = self._start_kube_proxy(self.nodes[0].name)
        pids["coredns"] = self._start_coredns()
        self._save(state)
        names = [f"node/{n.name}" for n in self.nodes]
        wait_until(
            lambda: self._nodes_registered(names, pids), timeout, "the real nodes to register"
        )
        for node in self.nodes:
            self._advertise(node)
        self.cluster.kubectl("wait", "--for=condition=Ready", f"--timeout={int(timeout)}s", *names)
        log(
            f"real nodes {', '.join(n.name for n in self.nodes)} ready in "
            f"{time.monotonic() - started:.1f}s (node address {NODE_IP})"
        )

    def prepare_images(self, timeout: float = 120) -> None:
        """Import each node's images into its containerd ahead of any cluster (``make test``
        does, before the tests: the torch image takes minutes per node the first time).

        Nothing is done while a cluster owns the nodes: its start imported them."""
        if not self.nodes or self._state().get("owner"):
            return
        check_prerequisites()
        for index, node in enumerate(self.nodes):
            paths = self.paths(node)
            pid = self._start_containerd(paths, index)
            try:
                self._wait_containerd(paths, timeout)
                self.import_images(node)
            finally:
                terminate(pid, grace=10)
                shutil.rmtree(paths.run, ignore_errors=True)
        log(f"images of {', '.join(n.name for n in self.nodes)} are in place")

    def stop(self) -> None:
        """Stop the kubelets, CoreDNS, kube-proxy and containerd; kill what containers are
        left; remove the bridges. The images stay in each node's containerd root."""
        state = self._state()
        if state.get("owner") not in (None, self.cluster.name):
            return
        self._stop_processes(state)
        self.state_path.unlink(missing_ok=True)

    def _take_over(self) -> None:
        """Refuse nodes another live cluster owns; clean up after one that is gone."""
        state = self._state()
        owner = state.get("owner")
        if owner and owner != self.cluster.name:
            alive = [pid for pid in state.get("pids", {}).values() if process_running(pid)]
            kubeconfig = self.cluster.home / f"{owner}.kubeconfig"
            if alive and kubeconfig.exists():
                raise ClusterError(
                    f"the machine's real nodes belong to cluster {owner!r}: stop it first "
                    f"(python -m tests.harness down --name {owner})"
                )
        self._stop_processes(state)

    def _stop_processes(self, state: dict[str, Any]) -> None:
        pids: dict[str, int] = state.get("pids", {})
        # Kubelets first (they would restart what is killed), then the rest.
        for name in sorted(pids, key=lambda n: not n.startswith("kubelet")):
            if process_running(pids[name]):
                terminate(pids[name], grace=10)
        for name in state.get("nodes", []) or [n.name for n in self.nodes]:
            paths = NodePaths(name)
            self._kill_shims(paths)
            kill_cgroup(paths.bridge)
            unmount_under(paths.run)
            unmount_under(paths.containerd_root)
            run("ip", "link", "del", paths.bridge, check=False)
            shutil.rmtree(paths.run, ignore_errors=True)

    @staticmethod
    def _kill_shims(paths: NodePaths) -> None:
        socket = str(paths.socket).encode()
        for pid in find_processes(lambda argv: b"containerd-shim" in argv[0] and socket in argv):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    # -- containerd ------------------------------------------------------------------------

    def _start_containerd(self, paths: NodePaths, index: int) -> int:
        paths.run.mkdir(parents=True, exist_ok=True)
        paths.containerd_root.mkdir(parents=True, exist_ok=True)
        paths.cni_dir.mkdir(parents=True, exist_ok=True)
        paths.pod_logs.mkdir(parents=True, exist_ok=True)
        subnet = POD_RANGE.replace("0.0/16", f"{index}.0/24")
        (paths.cni_dir / "10-ipl.conflist").write_text(
            json.dumps(cni_config(paths, subnet), indent=2), encoding="utf-8"
        )
        config = paths.run / "containerd.toml"
        config.write_text(containerd_config(paths), encoding="utf-8")
        return self._spawn(f"containerd-{paths.name}", ["containerd", "--config", str(config)])

    def _wait_containerd(self, paths: NodePaths, timeout: float) -> None:
        wait_until(
            lambda: self.ctr(paths, "version", check=False).returncode == 0,
            timeout,
            f"containerd of {paths.name} to answer on {paths.socket}",
        )

    def ctr(self, paths: NodePaths, *args: str, check: bool = True, stdin: Any = None) -> Any:
        cmd = ["ctr", "--address", str(paths.socket), "--namespace", "k8s.io", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, stdin=stdin)
        if check and result.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
        return result

    def import_images(self, node: RealNode) -> None:
        """Copy the node's images from Docker into its containerd, unless it has them."""
        paths = self.paths(node)
        listed = self.ctr(paths, "images", "list", "--quiet").stdout.split()
        stamps_path = paths.root / "images.json"
        try:
            stamps = json.loads(stamps_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stamps = {}
        for image in [SANDBOX_IMAGE, *node.images]:
            inspect = run("docker", "image", "inspect", "--format", "{{.Id}}", image, check=False)
            if inspect.returncode != 0:
                raise ClusterError(f"image {image} is not built: run `make images`")
            image_id = inspect.stdout.strip()
            if qualified(image) in listed and stamps.get(image) == image_id:
                continue
            began = time.monotonic()
            save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
            self.ctr(paths, "images", "import", "-", stdin=save.stdout)
            if save.wait() != 0:
                raise ClusterError(f"docker save {image} failed")
            self._discard_layers(paths, image)
            stamps[image] = image_id
            stamps_path.write_text(json.dumps(stamps, indent=2), encoding="utf-8")
            log(f"{node.name}: imported {image} in {time.monotonic() - began:.0f}s")

    def _discard_layers(self, paths: NodePaths, image: str) -> None:
        """Drop an imported image's layer blobs once unpacked (what containerd's
        ``discard_unpacked_layers`` does for pulls): containers start from the snapshots, so
        a node keeps one copy of each image, not two. ``docker save`` writes layers
        uncompressed, so each blob's digest is the layer's diff ID."""
        layers = run("docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", image)
        stored = set(self.ctr(paths, "content", "list", "--quiet").stdout.split())
        blobs = [digest for digest in json.loads(layers.stdout) if digest in stored]
        if blobs:
            self.ctr(paths, "content", "remove", *blobs)

    # -- kubelet, kube-proxy, CoreDNS -------------------------------------------------------

    def _start_kubelet(self, node: RealNode, ports: dict[str, int]) -> int:
        paths = self.paths(node)
        cgroup_root_create(paths.bridge)
        pki = self.cluster.pki_dir
        config = paths.run / "kubelet.yaml"
        config.write_text(
            yaml.safe_dump(kubelet_config(node, paths, ports, pki / "ca.crt")), encoding="utf-8"
        )
        labels = {**node.labels, self.cluster.pool_label: node.pool, "type": "real"}
        args = [
            str(self.cluster.tools.binary("kubelet")),
            f"--config={config}",
            f"--kubeconfig={self.cluster.kubeconfig}",
            f"--root-dir={paths.kubelet_dir}",
            f"--cert-dir={paths.run / 'pki'}",
            f"--hostname-override={node.name}",
            f"--node-ip={NODE_IP}",
            "--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            "--v=1",
        ]
        return self._spawn(f"kubelet-{node.name}", args)

    def _start_kube_proxy(self, hostname: str) -> int:
        args = [
            str(self.cluster.tools.binary("kube-proxy")),
            f"--kubeconfig={self.cluster.kubeconfig}",
            f"--hostname-override={hostname}",
            "--proxy-mode=iptables",
            f"--cluster-cidr={POD_RANGE}",
            "--conntrack-max-per-core=0",
            f"--healthz-bind-address=127.0.0.1:{free_port()}",
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            "--v=1",
        ]
        return self._spawn("kube-proxy", args)

    def _start_coredns(self) -> int:
        config = self.workdir / "Corefile"
        config.write_text(corefile(self.cluster.kubeconfig), encoding="utf-8")
        args = [str(self.cluster.tools.binary("coredns")), "-conf", str(config)]
        return self._spawn("coredns", args)

    def _spawn(self, name: str, args: list[str]) -> int:
        log_path = self.workdir / f"{name}.log"
        self.workdir.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return process.pid

    def _nodes_registered(self, names: list[str], pids: dict[str, int]) -> bool:
        for name, pid in pids.items():
            if not process_running(pid):
                tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise ClusterError(f"{name} exited:\n{tail}")
        result = self.cluster.kubectl("get", *names, "-o", "name", check=False)
        return result.returncode == 0

    def _advertise(self, node: RealNode) -> None:
        """Extended resources (GPUs) the node's pods are scheduled and counted against."""
        if node.extended_resources:
            self.cluster.patch_node_status(node.name, {"capacity": dict(node.extended_resources)})

    def healthy(self) -> bool:
        """Every kubelet answers its health check."""
        ports = self._state().get("ports", {})
        return all(answers_ok(f"http://127.0.0.1:{p['healthz']}/healthz") for p in ports.values())
