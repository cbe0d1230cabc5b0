"""A real Gateway API implementation for the local cluster: Traefik as a local process.

Traefik (built from its Go module by ``hack/tools/build.sh``) runs on this machine with its
Kubernetes Gateway provider pointed at the cluster's kubeconfig, as Prometheus does
(``prometheus.py``). It listens on the node address (``NODE_IP``): pods reach it there, as
they reach the machine, and so do the tests. It routes to the endpoints of the backend
Services, the pods' own addresses, which the machine reaches through the real nodes' bridges.

Each instance has a GatewayClass of its own (``controllerName: traefik.io/gateway-controller``,
labelled with the instance's name) and watches only that class (the provider's label
selector), so two instances on one cluster never fight over a Gateway's status.

What Traefik's provider implements (``pkg/provider/kubernetes/gateway`` at the pinned
version): HTTPRoute path, header and query matches, weighted backendRefs, redirects,
rewrites and header modifiers; not the RequestMirror filter (a route that has one is refused:
"unsupported filter"), nor session persistence. Its Kubernetes CRD provider is on as well, so
an HTTPRoute may name a ``TraefikService`` (``group: traefik.io``) as a backend: one of kind
mirroring copies a share of the requests it serves to other Services, Traefik's own mirror.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.harness.cluster import Cluster
from tests.harness.node import NODE_IP
from tests.harness.processes import (
    ClusterError,
    answers_ok,
    free_port,
    log,
    stop_process,
    wait_until,
)

CONTROLLER_NAME = "traefik.io/gateway-controller"
INSTANCE_LABEL = "gateway.inference.dev/instance"


def free_port_on(host: str) -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Traefik:
    """``traefik`` from the tool set, its Kubernetes Gateway provider watching one GatewayClass.

    ``entrypoints`` maps entry point names to ports on ``host``: a Gateway listener is served
    by the entry point whose port is the listener's. Its API (no dashboard) and ``/ping`` are
    on a free loopback port.
    """

    def __init__(
        self,
        cluster: Cluster,
        workdir: Path,
        entrypoints: Mapping[str, int],
        class_name: str,
        host: str = NODE_IP,
        channel: str = "standard",
    ) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.entrypoints = dict(entrypoints)
        self.class_name = class_name
        self.host = host
        self.channel = channel
        self.api_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "traefik.log"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self, timeout: float = 60) -> Traefik:
        self.workdir.mkdir(parents=True, exist_ok=True)
        tools = self.cluster.tools
        self.cluster.apply_crds([*tools.gateway_api_crds(self.channel), *tools.traefik_crds()])
        self._apply_gateway_class()
        self.api_port = free_port()
        args = [
            str(self.cluster.tools.binary("traefik")),
            "--global.checknewversion=false",
            "--global.sendanonymoususage=false",
            "--log.level=INFO",
            f"--entrypoints.traefik.address=127.0.0.1:{self.api_port}",
            "--api.insecure=true",
            "--api.dashboard=false",
            "--ping=true",
            "--providers.kubernetesgateway=true",
            f"--providers.kubernetesgateway.labelselector={INSTANCE_LABEL}={self.class_name}",
            f"--providers.kubernetesgateway.statusaddress.ip={self.host}",
            "--providers.kubernetescrd=true",
        ]
        if self.channel == "experimental":
            args.append("--providers.kubernetesgateway.experimentalchannel=true")
        for name, port in self.entrypoints.items():
            args.append(f"--entrypoints.{name}.address={self.host}:{port}")
        env = {**os.environ, "KUBECONFIG": str(self.cluster.kubeconfig)}
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            wait_until(self._ready, timeout, "Traefik to answer /ping")
        except (ClusterError, TimeoutError):
            self.stop()
            raise
        log(f"Traefik ready (class {self.class_name}, entry points {self.entrypoints})")
        return self

    def _apply_gateway_class(self) -> None:
        gateway_class = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": {"name": self.class_name, "labels": {INSTANCE_LABEL: self.class_name}},
            "spec": {"controllerName": CONTROLLER_NAME},
        }
        self.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(gateway_class))

    def _ready(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            raise ClusterError(f"Traefik exited during start-up:\n{self.log_tail()}")
        return answers_ok(f"{self.api}/ping")

    def serves_route(self, namespace: str, route: str) -> bool:
        """Whether Traefik's applied configuration holds a router of the HTTPRoute (its
        provider names them ``httproute-<namespace>-<route>-...``)."""
        try:
            with urllib.request.urlopen(f"{self.api}/api/http/routers", timeout=5) as answer:
                routers = json.loads(answer.read())
        except (OSError, ValueError):
            return False
        prefix = f"httproute-{namespace}-{route}-"
        return any(str(r.get("name", "")).startswith(prefix) for r in routers)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as err:
            return f"(no log: {err})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
        self.cluster.kubectl(
            "delete", "gatewayclass", self.class_name, "--ignore-not-found", "--wait=false",
            check=False,
        )  # fmt: skip

    def __enter__(self) -> Traefik:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class Gateway:
    """One Gateway with an HTTP listener on a free port of the node address, served by a
    Traefik of its own: ``with Gateway(cluster, workdir) as gateway: gateway.address``.

    HTTPRoutes attach to it with ``parentRefs: [{name: gateway.gateway_name, namespace:
    gateway.namespace}]``, from any namespace.
    """

    def __init__(
        self,
        cluster: Cluster,
        workdir: Path,
        name: str = "harness",
        namespace: str = "gateway",
        host: str = NODE_IP,
        channel: str = "standard",
    ) -> None:
        self.cluster = cluster
        self.gateway_name = name
        self.namespace = namespace
        self.class_name = f"traefik-{namespace}-{name}"
        self.host = host
        self.port = 0
        self.traefik = Traefik(cluster, workdir, {}, self.class_name, host=host, channel=channel)

    @property
    def address(self) -> str:
        """The URL of the HTTP listener."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60) -> Gateway:
        self.port = free_port_on(self.host)
        self.traefik.entrypoints = {"web": self.port}
        self.traefik.start(timeout)
        try:
            self._apply_gateway()
            wait_until(self._programmed, timeout, f"Gateway {self.gateway_name} to be Programmed")
        except (ClusterError, TimeoutError) as err:
            self.stop()
            raise ClusterError(f"{err}\nTraefik's log:\n{self.traefik.log_tail()}") from None
        log(f"Gateway {self.namespace}/{self.gateway_name} programmed at {self.address}")
        return self

    def _apply_gateway(self) -> None:
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        gateway = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": {"name": self.gateway_name, "namespace": self.namespace},
            "spec": {
                "gatewayClassName": self.class_name,
                "listeners": [
                    {
                        "name": "http",
                        "protocol": "HTTP",
                        "port": self.port,
                        "allowedRoutes": {"namespaces": {"from": "All"}},
                    }
                ],
            },
        }
        stdin = "\n---\n".join(json.dumps(o) for o in (namespace, gateway))
        self.cluster.kubectl("apply", "-f", "-", stdin=stdin)

    def status(self) -> dict[str, Any]:
        result = self.cluster.kubectl(
            "get", "gateway", self.gateway_name, "-n", self.namespace, "-o", "json"
        )
        return dict(json.loads(result.stdout).get("status", {}))

    def _programmed(self) -> bool:
        if self.traefik.process is None or self.traefik.process.poll() is not None:
            raise ClusterError("Traefik exited")
        conditions = self.status().get("conditions", [])
        return any(c["type"] == "Programmed" and c["status"] == "True" for c in conditions)

    def route_conditions(self, namespace: str, route: str) -> list[dict[str, Any]]:
        """The conditions Traefik gave an HTTPRoute for this Gateway (none yet: empty)."""
        result = self.cluster.kubectl("get", "httproute", route, "-n", namespace, "-o", "json")
        parents = json.loads(result.stdout).get("status", {}).get("parents", [])
        for parent in parents:
            if parent.get("parentRef", {}).get("name") == self.gateway_name:
                return list(parent.get("conditions", []))
        return []

    def stop(self) -> None:
        with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
            self.cluster.kubectl(
                "delete", "gateway", self.gateway_name, "-n", self.namespace,
                "--ignore-not-found", "--wait=false", check=False, timeout=30,
            )  # fmt: skip
        self.traefik.stop()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def wait_for_route(gateway: Gateway, namespace: str, route: str, timeout: float = 60) -> None:
    """Wait until Traefik has accepted an HTTPRoute, resolved its backends and serves a router
    of it; fail with the route's conditions. (Traefik writes the route's status when its
    provider reads the route, and serves it only once the configuration is applied, which
    providers' throttling delays: a request between the two gets a 404.)"""

    def accepted() -> bool:
        conditions = {c["type"]: c["status"] for c in gateway.route_conditions(namespace, route)}
        held = conditions.get("Accepted") == conditions.get("ResolvedRefs") == "True"
        return held and gateway.traefik.serves_route(namespace, route)

    try:
        wait_until(accepted, timeout, f"HTTPRoute {namespace}/{route} to be accepted")
    except TimeoutError as err:
        raise ClusterError(f"{err}: {gateway.route_conditions(namespace, route)}") from None


# -- the Gateway API conformance suite ---------------------------------------------------------

# The images the suite's base manifests name, built locally (hack/images/build.sh) and imported
# into the real nodes (there is no registry to pull them from).
CONFORMANCE_IMAGES = (
    "gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd",
    "registry.k8s.io/coredns/coredns:v1.12.2",
)
CONFORMANCE_NAMESPACES = (
    "gateway-conformance-infra",
    "gateway-conformance-app-backend",
    "gateway-conformance-web-backend",
)
# The listener ports of the suite's base Gateways (HTTP 80, HTTPS 443).
CONFORMANCE_ENTRYPOINTS = {"web": 80, "websecure": 443}


@dataclass(frozen=True)
class ConformanceRun:
    """One run of the conformance binary: its exit code, the verdict of each test it ran
    (from its verbose output) and its report."""

    returncode: int
    results: Mapping[str, str]
    report: Mapping[str, Any]
    output: str

    def statistics(self) -> dict[str, int]:
        """Passed, Failed and Skipped, summed over the report's profiles (core and extended)."""
        totals = {"Passed": 0, "Failed": 0, "Skipped": 0}
        for profile in self.report.get("profiles", []):
            for level in ("core", "extended"):
                stats = profile.get(level, {}).get("statistics", {})
                for key in totals:
                    totals[key] += int(stats.get(key, 0))
        return totals

    def failed_tests(self) -> list[str]:
        failed: list[str] = []
        for profile in self.report.get("profiles", []):
            for level in ("core", "extended"):
                failed += profile.get(level, {}).get("failedTests", [])
        return failed


def run_conformance(
    cluster: Cluster,
    workdir: Path,
    class_name: str,
    test: str,
    supported_features: list[str],
    timeout: float = 600,
) -> ConformanceRun:
    """Run one test of the suite (``-run-test``) against the GatewayClass ``class_name``.

    The base resources (namespaces, Gateways, echo backends) stay for the next run; delete
    them with ``cleanup_conformance``."""
    workdir.mkdir(parents=True, exist_ok=True)
    report_path = workdir / f"{test}-report.yaml"
    report_path.unlink(missing_ok=True)
    version = cluster.tools.versions()["TRAEFIK_VERSION"]
    args = [
        str(cluster.tools.binary("gateway-api-conformance")),
        "-test.run=^TestConformance$",
        "-test.v",
        f"-test.timeout={int(timeout)}s",
        f"-gateway-class={class_name}",
        f"-run-test={test}",
        "-supported-features=" + ",".join(supported_features),
        "-conformance-profiles=GATEWAY-HTTP",
        "-cleanup-base-resources=false",
        f"-report-output={report_path}",
        "-organization=traefik",
        "-project=traefik",
        "-url=https://traefik.io/",
        f"-version={version}",
        "-contact=local-harness",
    ]
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    result = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout + 60, cwd=workdir
    )
    output = result.stdout + result.stderr
    (workdir / f"{test}.log").write_text(output, encoding="utf-8")
    verdicts = dict(
        (name, verdict)
        for verdict, name in re.findall(r"--- (PASS|FAIL|SKIP): TestConformance/(\S+)", output)
    )
    report: dict[str, Any] = {}
    if report_path.exists():
        report = dict(yaml.safe_load(report_path.read_text(encoding="utf-8")) or {})
    return ConformanceRun(result.returncode, verdicts, report, output)


def cleanup_conformance(cluster: Cluster) -> None:
    """Delete what the suite left (its namespaces, and so their Gateways and backends)."""
    cluster.kubectl(
        "delete", "namespace", *CONFORMANCE_NAMESPACES, "--ignore-not-found", "--wait=false",
        check=False,
    )  # fmt: skip
