"""Serve a namespace's KServe Deployments as local processes: what the cluster would run.

kwok runs no containers. To send real requests through pipelines on the local cluster, the
serving container of every InferenceService Deployment KServe created is started here, on
loopback, from exactly the command, args and environment KServe gave it (the image's
entrypoint, read from the project's Dockerfile, when the container names no command), with
``/mnt/models`` mapped to a local directory per storage URI. KServe's InferenceGraph router
runs from its own Deployment's args, the services' cluster URLs mapped to those processes.

A component starts when KServe creates its Deployment and stops when the Deployment goes; the
router follows its Deployment's rollouts. KServe's router only
listens on port 8080, so a new graph means a new router process: requests pass through a
:class:`Gate`, and the router is swapped while none is in flight, so no accepted request is
lost (a request that arrives meanwhile waits for the new router).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tests.harness.cluster import Cluster
from tests.harness.processes import (
    ClusterError,
    answers_ok,
    free_port,
    log,
    terminate,
    wait_until,
)
from tests.harness.prometheus import Target
from tests.harness.tools import REPO_ROOT

ISVC_LABEL = "serving.kserve.io/inferenceservice"
GRAPH_LABEL = "serving.kserve.io/inferencegraph"
COMPONENT_LABEL = "component"
SERVING_CONTAINER = "kserve-container"
MODEL_MOUNT = "/mnt/models"
STORAGE_ANNOTATION = "internal.serving.kserve.io/storage-initializer-sourceuri"
ROUTER_PORT = 8080  # fixed in KServe's router (constants.RouterPort)
ROUTER_LOCK = Path(tempfile.gettempdir()) / "inference-pipelines-router-8080.lock"
# The project's images, and the Dockerfile whose ENTRYPOINT each one runs.
IMAGES = {
    "ghcr.io/inference-pipelines/predictors": REPO_ROOT / "predictors" / "Dockerfile",
    "ghcr.io/inference-pipelines/transformer": REPO_ROOT / "transformers_" / "Dockerfile",
}
_ENTRYPOINT = re.compile(r"^ENTRYPOINT\s+(\[.*\])\s*$", re.MULTILINE)


def entrypoint(image: str) -> list[str]:
    """The ENTRYPOINT of one of the project's images, from its Dockerfile."""
    repository = image.rsplit("@", 1)[0].rsplit(":", 1)[0]
    dockerfile = IMAGES.get(repository)
    if dockerfile is None:
        raise ClusterError(f"no local build of image {image}: known are {sorted(IMAGES)}")
    match = _ENTRYPOINT.search(dockerfile.read_text(encoding="utf-8"))
    if match is None:
        raise ClusterError(f"{dockerfile} has no ENTRYPOINT in exec form")
    return list(json.loads(match.group(1)))


def with_flag(args: Sequence[str], flag: str, value: str) -> list[str]:
    """``args`` with ``flag`` set to ``value``: replaced where set, else appended."""
    out: list[str] = []
    skip = False
    for index, arg in enumerate(args):
        if skip:
            skip = False
            continue
        if arg == flag and index + 1 < len(args):
            skip = True
            continue
        if arg.startswith(f"{flag}="):
            continue
        out.append(arg)
    return [*out, f"{flag}={value}"]


def flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value of ``--flag value`` or ``--flag=value`` (the last one wins, as in argparse)."""
    found = None
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            found = args[index + 1]
        elif arg.startswith(f"{flag}="):
            found = arg.split("=", 1)[1]
    return found


@dataclass
class Component:
    """One Deployment's serving container, running as a local process."""

    deployment: str
    model_name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    upstream: str | None = None
    """The local address of the predictor a transformer calls: it serves only once that does."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
                start_new_session=True,
            )

    def ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise ClusterError(f"{self.deployment} exited; its log:\n{tail}")
        url = f"http://{self.address}/v2/models/{self.model_name}/ready"
        return answers_ok(url)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            terminate(self.process.pid, grace=5)
            self.process.wait(timeout=10)


def local_component(
    deployment: Mapping[str, Any],
    storage: Mapping[str, Path],
    hosts: Mapping[str, str],
    log_dir: Path,
) -> Component:
    """The local process for a Deployment's serving container.

    ``storage`` maps storage URIs to local directories (what KServe's storage initializer
    would have put at /mnt/models); ``hosts`` maps in-cluster hosts (``<svc>.<ns>``) to the
    local addresses of the processes serving them (a transformer's ``--predictor_host``).
    """
    name = deployment["metadata"]["name"]
    template = deployment["spec"]["template"]
    containers = template["spec"]["containers"]
    container = next((c for c in containers if c["name"] == SERVING_CONTAINER), containers[0])
    env = {e["name"]: e.get("value", "") for e in container.get("env") or [] if "name" in e}
    uri = env.get("STORAGE_URI") or (template["metadata"].get("annotations") or {}).get(
        STORAGE_ANNOTATION
    )
    models = storage.get(uri) if uri else None
    if uri and models is None:
        raise ClusterError(f"{name}: no local directory for storage URI {uri}")

    def local(value: str) -> str:
        return value.replace(MODEL_MOUNT, str(models)) if models is not None else value

    command = list(container.get("command") or entrypoint(container["image"]))
    if command and command[0] in ("python", "python3"):
        command[0] = sys.executable
    args = [local(a) for a in container.get("args") or []]
    predictor = flag_value(args, "--predictor_host")
    upstream = None
    if predictor is not None:
        if predictor not in hosts:
            raise ClusterError(f"{name}: --predictor_host {predictor} is not served locally")
        upstream = hosts[predictor]
        args = with_flag(args, "--predictor_host", upstream)
    if models is not None and flag_value(args, "--model_dir") is None:
        # The project's servers read /mnt/models by default: the same files, locally.
        args = with_flag(args, "--model_dir", str(models))
    port = free_port()
    args = with_flag(with_flag(args, "--http_port", str(port)), "--grpc_port", str(free_port()))
    process_env = {
        **os.environ,
        **{k: local(v) for k, v in env.items()},
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    return Component(
        deployment=name,
        model_name=flag_value(args, "--model_name") or "model",
        argv=[*command, *args],
        env=process_env,
        port=port,
        log_path=log_dir / f"{name}.log",
        upstream=upstream,
    )


def local_graph(graph_json: str, addresses: Mapping[str, str]) -> dict[str, Any]:
    """The router's graph with each step's cluster service URL pointed at its local process.

    ``addresses`` maps service names (``<isvc>-predictor``, ``<isvc>-transformer``) to
    ``127.0.0.1:<port>``.
    """
    graph: dict[str, Any] = json.loads(graph_json)
    for node in graph.get("nodes", {}).values():
        for step in node.get("steps") or []:
            url = step.get("serviceUrl")
            if not url:
                continue
            scheme, _, rest = url.partition("://")
            host, _, path = rest.partition("/")
            service = host.split(".")[0]
            if service not in addresses:
                raise ClusterError(f"graph step {step.get('name')}: {service} is not served")
            step["serviceUrl"] = f"{scheme}://{addresses[service]}/{path}"
    return graph


class Gate:
    """Requests pass while no router swap is under way; a swap waits for none in flight."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._in_flight = 0
        self._swapping = False

    @contextlib.contextmanager
    def request(self) -> Iterator[None]:
        with self._lock:
            self._lock.wait_for(lambda: not self._swapping)
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self._lock.notify_all()

    @contextlib.contextmanager
    def swap(self) -> Iterator[None]:
        with self._lock:
            self._swapping = True
            self._lock.wait_for(lambda: self._in_flight == 0)
        try:
            yield
        finally:
            with self._lock:
                self._swapping = False
                self._lock.notify_all()


@dataclass
class Router:
    """KServe's router binary on port 8080 with one graph; holds the port's lock file."""

    binary: Path
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None
    graph: dict[str, Any] = field(default_factory=dict)
    _lock_file: Any = None

    def start(self, graph: Mapping[str, Any], env: Mapping[str, str], timeout: float = 30) -> None:
        if self._lock_file is None:
            self._lock_file = acquire_router_port(timeout * 4)
        self.graph = dict(graph)
        with (self.log_dir / "router.log").open("ab") as out:
            self.process = subprocess.Popen(
                [str(self.binary), "--graph-json", json.dumps(self.graph)],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(self._ready, timeout, "KServe's router to be ready on port 8080")

    def stop(self, release: bool = True) -> None:
        # SIGTERM makes the router wait 30 s to drain: with no request in flight, kill it.
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
        if release and self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            tail = (self.log_dir / "router.log").read_text(errors="replace")[-2000:]
            raise ClusterError(f"the router exited:\n{tail}")
        return answers_ok(f"http://127.0.0.1:{ROUTER_PORT}/readyz")


def acquire_router_port(timeout: float) -> Any:
    """An exclusive lock on port 8080 across processes (KServe's router cannot move)."""
    ROUTER_LOCK.touch(exist_ok=True)
    handle = ROUTER_LOCK.open("w")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                raise TimeoutError(f"another router held {ROUTER_LOCK} too long") from None
            time.sleep(0.2)


class LocalServing:
    """The data plane of one namespace's pipelines, following the cluster as it changes."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        storage: Mapping[str, Path],
        workdir: Path,
        graph: str,
        on_change: Callable[[list[Target]], None] | None = None,
    ) -> None:
        """``on_change`` gets the metrics targets whenever components start or stop (e.g.
        :meth:`Prometheus.scrape <tests.harness.prometheus.Prometheus.scrape>`)."""
        self.on_change = on_change
        self.namespace = namespace
        self.storage = dict(storage)
        self.workdir = workdir
        self.graph_name = graph
        self.gate = Gate()
        # deployment -> (its pod template as JSON, the process): serving, and still loading
        self.components: dict[str, tuple[str, Component]] = {}
        self.starting: dict[str, tuple[str, Component]] = {}
        self.router = Router(cluster.tools.binary("router"), workdir)
        self.router_template = ""
        self.apps = client.AppsV1Api(config.new_client_from_config(str(cluster.kubeconfig)))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.swaps = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{ROUTER_PORT}"

    def targets(self) -> list[Target]:
        """The components' metrics endpoints, for Prometheus."""
        return [Target(c.address, {"deployment": d}) for d, (_, c) in self.components.items()]

    def start(self, timeout: float = 180) -> LocalServing:
        """Serve what the cluster runs now, then follow its changes in the background."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        wait_until(self.sync, timeout, f"the router of {self.graph_name} to serve")
        self._thread = threading.Thread(target=self._follow, name="local-serving", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self.router.stop()
        for _, component in [*self.components.values(), *self.starting.values()]:
            component.stop()
        self.components.clear()
        self.starting.clear()

    def __enter__(self) -> LocalServing:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _follow(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.sync()
            except Exception as err:  # reported to whoever checks .error, e.g. a test
                self.error = err
                log(f"local serving stopped following the cluster: {err}")
                return

    def _deployments(self, selector: str) -> list[dict[str, Any]]:
        listed = self.apps.list_namespaced_deployment(self.namespace, label_selector=selector)
        sanitize = self.apps.api_client.sanitize_for_serialization
        return [sanitize(d) for d in listed.items]

    def sync(self) -> bool:
        """Start components for KServe's Deployments, put those that became ready in service,
        follow the router; True once a router serves.

        Never waits for a component: one still loading keeps only the graphs that need it
        from being served, while the router follows every other change at once.
        """
        # Started as soon as KServe creates the Deployment: kwok reports pods Ready within a
        # second, while a model server takes seconds to load. Only the router decides whether
        # requests reach a component, and it follows the cluster's router Deployment.
        deployments = self._deployments(ISVC_LABEL)
        # Predictors first: a transformer needs its predictor's local address.
        deployments.sort(key=lambda d: d["metadata"]["labels"].get(COMPONENT_LABEL) != "predictor")
        hosts = {
            f"{d}.{self.namespace}": c.address
            for d, (_, c) in {**self.components, **self.starting}.items()
        }
        for deployment in deployments:
            name = deployment["metadata"]["name"]
            digest = json.dumps(deployment["spec"]["template"], sort_keys=True)
            known = self.starting.get(name) or self.components.get(name)
            if known is not None and known[0] == digest:
                continue
            if name in self.starting:
                self.starting.pop(name)[1].stop()
            component = local_component(deployment, self.storage, hosts, self.workdir)
            hosts[f"{name}.{self.namespace}"] = component.address
            component.start()
            self.starting[name] = (digest, component)
        replaced: list[Component] = []
        # A transformer serves once its predictor does, as KServe's Ready needs both.
        ready = [n for n, (_, c) in self.starting.items() if c.upstream is None and c.ready()]
        serving = {c.address for _, c in self.components.values()}
        serving |= {self.starting[n][1].address for n in ready}
        ready += [
            n
            for n, (_, c) in self.starting.items()
            if c.upstream is not None and c.upstream in serving and c.ready()
        ]
        for name in ready:
            old = self.components.get(name)
            self.components[name] = self.starting.pop(name)
            if old is not None:
                replaced.append(old[1])
        # The router is pointed at the new processes before the replaced ones stop.
        self._follow_router(force=bool(replaced))
        for component in replaced:
            component.stop()
        names = {d["metadata"]["name"] for d in deployments}
        gone = [d for d in [*self.components, *self.starting] if d not in names]
        for name in gone:
            entry = self.components.pop(name, None) or self.starting.pop(name)
            entry[1].stop()
        if (ready or gone) and self.on_change is not None:
            self.on_change(self.targets())
        return self.router.process is not None

    def _follow_router(self, force: bool = False) -> None:
        routers = self._deployments(f"{GRAPH_LABEL}={self.graph_name}")
        if not routers:
            return
        template = routers[0]["spec"]["template"]
        digest = json.dumps(template, sort_keys=True)
        if digest == self.router_template and not force:
            return
        container = template["spec"]["containers"][0]
        graph_json = flag_value(container.get("args") or [], "--graph-json") or "{}"
        addresses = {d: c.address for d, (_, c) in self.components.items()}
        try:
            graph = local_graph(graph_json, addresses)
        except ClusterError:
            return  # a service of the new graph is not served locally yet: next round
        env = {e["name"]: e.get("value", "") for e in container.get("env") or []}
        with self.gate.swap():
            self.router.stop(release=False)
            self.router.start(graph, env)
        self.router_template = digest
        self.swaps += 1
