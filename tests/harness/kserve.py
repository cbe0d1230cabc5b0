"""KServe's own control plane on a local cluster: its controller manager and admission webhooks.

Installed the way a cluster admin installs KServe in Standard (raw Deployment) mode, minus the
images: the ``kserve`` namespace and its ``inferenceservice-config`` ConfigMap (KServe's own
file at the pinned version, switched to Standard mode), the default ClusterStorageContainer,
KServe's ClusterServingRuntimes, and the controller manager (built from KServe's Go module)
as a local process whose webhooks the apiserver calls over loopback TLS. InferenceServices
then become Ready the way they do on a real cluster: KServe creates their Deployments, the
scheduler binds the pods to the kwok node pools and kwok runs them.

Order matters on the way down: KServe's webhooks fail closed and its finalizers need the
manager, so the webhook configurations go before the manager stops (see :meth:`stop`).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.harness.processes import (
    ClusterError,
    ProcessFigures,
    answers_ok,
    free_port,
    log,
    process_running,
    terminate,
    wait_until,
)

if TYPE_CHECKING:
    from tests.harness.cluster import Cluster

NAMESPACE = "kserve"
CONFIG_MAP = "inferenceservice-config"
FIELD_MANAGER = "local-kserve"
# Labels KServe's own install puts on its namespace; the pod mutator skips that namespace.
NAMESPACE_LABELS = {"control-plane": "kserve-controller-manager"}
# Headers the InferenceGraph router passes from a request to every hop it makes: regular
# expressions over canonical header names ("Traceparent"), as KServe's router reads them.
PROPAGATED_HEADERS = ["(?i)^traceparent$", "(?i)^tracestate$", "(?i)^x-request-id$"]


def pinned_image(image: str, version: str, mapping: dict[str, str]) -> str:
    """An upstream image reference with its placeholder or ``latest`` tag pinned to ``version``.

    ``mapping`` is a kustomization's ``images`` list (name -> new name:tag), as KServe's
    manifests use it to fill placeholders such as ``huggingfaceserver:replace``.
    """
    name, _, tag = image.partition(":")
    if name in mapping:
        name, _, tag = mapping[name].partition(":")
    if tag in ("", "latest", "replace"):
        tag = version
    elif tag.startswith("latest-"):
        tag = f"{version}-{tag.removeprefix('latest-')}"
    return f"{name}:{tag}"


def kustomize_images(path: Path) -> dict[str, str]:
    """``name -> newName:newTag`` from a kustomization.yaml's ``images`` list."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {
        entry["name"]: f"{entry.get('newName', entry['name'])}:{entry.get('newTag', 'latest')}"
        for entry in doc.get("images") or []
    }


def standard_mode_config(upstream: dict[str, Any], version: str) -> dict[str, Any]:
    """KServe's ``inferenceservice-config`` for Standard mode, from its own file.

    Every key of the upstream file is kept (the manager and its pod mutator parse all of
    them); the changes: Standard deployment mode, no Ingress objects and no Istio virtual
    hosts (neither exists here), images pinned to ``version``, and the router propagating
    the trace and auth headers.
    """
    data: dict[str, str] = dict(upstream["data"])
    settings = {k: json.loads(v) for k, v in data.items() if not k.startswith("_")}
    settings["deploy"]["defaultDeploymentMode"] = "Standard"
    settings["ingress"].update(disableIngressCreation=True, disableIstioVirtualHost=True)
    for key in ("storageInitializer", "logger", "batcher", "agent", "router"):
        settings[key]["image"] = pinned_image(settings[key]["image"], version, {})
    settings["localModel"]["defaultJobImage"] = pinned_image(
        settings["localModel"]["defaultJobImage"], version, {}
    )
    for explainer in settings["explainers"].values():
        explainer["defaultImageVersion"] = version
    settings["router"]["headers"] = {"propagate": PROPAGATED_HEADERS}
    data.update({k: json.dumps(v, indent=2) for k, v in settings.items()})
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
        "data": data,
    }


def webhook_configurations(
    upstream: list[dict[str, Any]], port: int, ca_bundle: bytes
) -> list[dict[str, Any]]:
    """KServe's webhook configurations, calling the local manager instead of a Service.

    Everything else (rules, selectors, failure policies, review versions) is upstream's.
    """
    out = []
    for doc in upstream:
        doc = json.loads(json.dumps(doc))
        doc["metadata"] = {"name": doc["metadata"]["name"], "labels": {"app": FIELD_MANAGER}}
        for hook in doc["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {
                "url": f"https://127.0.0.1:{port}{path}",
                "caBundle": base64.b64encode(ca_bundle).decode(),
            }
        out.append(doc)
    return out


def self_signed_certificate() -> tuple[bytes, bytes]:
    """A self-signed serving certificate for 127.0.0.1 (PEM cert, PEM key); it is its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kserve-webhook-local")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class KServe:
    """KServe's controller manager and webhooks for one cluster, as a local process.

    The process outlives the Python object that started it (``make cluster-up`` returns while
    the cluster runs): its pid and ports are kept in ``workdir``, so any later ``KServe`` on the
    same cluster and directory finds, reuses or stops it.
    """

    def __init__(self, cluster: Cluster, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.config_dir = cluster.tools.root / "kserve-config"
        self.version = cluster.tools.versions()["KSERVE_VERSION"]

    @property
    def log_path(self) -> Path:
        return self.workdir / "manager.log"

    @property
    def _state_path(self) -> Path:
        return self.workdir / "manager.json"

    def _state(self) -> dict[str, int]:
        try:
            state = json.loads(self._state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {k: int(v) for k, v in state.items()}

    @property
    def pid(self) -> int | None:
        pid = self._state().get("pid")
        return pid if pid and process_running(pid) else None

    def figures(self) -> ProcessFigures | None:
        """Peak RSS and CPU time of the running manager so far."""
        pid = self.pid
        return ProcessFigures.of(pid) if pid else None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        """Install KServe's configuration, start the manager, register its webhooks.

        A manager already running for this cluster and answering is reused.
        """
        started = time.monotonic()
        if self.pid is not None and self._ready():
            log(f"KServe's controller manager is already running (pid {self.pid})")
            return
        self.stop()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._apply(self._namespace(), self._config_map())
        cert = self._write_certificate()
        ports = {"webhook": free_port(), "probe": free_port()}
        pid = self._start_manager(ports)
        self._state_path.write_text(json.dumps({"pid": pid, **ports}), encoding="utf-8")
        wait_until(self._ready, timeout, "KServe's controller manager to report /readyz ok")
        hooks = webhook_configurations(self._upstream_webhooks(), ports["webhook"], cert)
        self._apply(*hooks)
        # The webhooks answer once the apiserver has loaded their configurations: KServe's own
        # validator admitting its runtimes is the proof.
        wait_until(
            lambda: self._apply(*self._runtimes(), check=False),
            timeout,
            "KServe's webhooks to admit its ClusterServingRuntimes",
        )
        log(
            f"KServe {self.version} controller manager ready in "
            f"{time.monotonic() - started:.1f}s (webhooks on 127.0.0.1:{ports['webhook']})"
        )

    def stop(self) -> None:
        """Unregister the webhooks (they fail closed), then stop the manager."""
        if self.cluster.kubeconfig.exists():
            self.cluster.kubectl(
                "delete",
                "mutatingwebhookconfigurations,validatingwebhookconfigurations",
                "-l",
                f"app={FIELD_MANAGER}",
                "--ignore-not-found",
                check=False,
                timeout=30,
            )
        pid = self.pid
        if pid is not None:
            figures = ProcessFigures.of(pid)
            terminate(pid, grace=20)
            if figures:
                log(
                    f"KServe's controller manager stopped: peak RSS {figures.peak_rss_mib:.0f} "
                    f"MiB, CPU {figures.cpu_seconds:.1f}s"
                )
        self._state_path.unlink(missing_ok=True)

    # -- pieces ----------------------------------------------------------------------------

    def _namespace(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": NAMESPACE_LABELS},
        }

    def _config_map(self) -> dict[str, Any]:
        path = self.config_dir / "configmap" / "inferenceservice.yaml"
        return standard_mode_config(yaml.safe_load(path.read_text(encoding="utf-8")), self.version)

    def _upstream_webhooks(self) -> list[dict[str, Any]]:
        text = (self.config_dir / "webhook" / "manifests.yaml").read_text(encoding="utf-8")
        return [d for d in yaml.safe_load_all(text) if d]

    def _runtimes(self) -> list[dict[str, Any]]:
        """KServe's ClusterServingRuntimes and default ClusterStorageContainer, images pinned."""
        out: list[dict[str, Any]] = []
        for folder, field in (("runtimes", "containers"), ("storagecontainers", "container")):
            directory = self.config_dir / folder
            images = kustomize_images(directory / "kustomization.yaml")
            for path in sorted(directory.glob("*.yaml")):
                if path.name in ("kustomization.yaml", "configuration.yaml"):
                    continue
                for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                    if not doc:
                        continue
                    containers = doc["spec"][field]
                    for container in containers if isinstance(containers, list) else [containers]:
                        container["image"] = pinned_image(container["image"], self.version, images)
                    out.append(doc)
        return out

    def _write_certificate(self) -> bytes:
        # controller-runtime reads $TMPDIR/k8s-webhook-server/serving-certs/tls.{crt,key}.
        cert, key = self_signed_certificate()
        certs = self.workdir / "tmp" / "k8s-webhook-server" / "serving-certs"
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "tls.crt").write_bytes(cert)
        (certs / "tls.key").write_bytes(key)
        (certs / "tls.key").chmod(0o600)
        return cert

    def _start_manager(self, ports: dict[str, int]) -> int:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "POD_NAMESPACE": NAMESPACE,
            "TMPDIR": str(self.workdir / "tmp"),
        }
        args = [
            str(self.cluster.tools.binary("kserve-manager")),
            "--metrics-addr=0",
            f"--health-probe-addr=127.0.0.1:{ports['probe']}",
            f"--webhook-port={ports['webhook']}",
            f"--kubeconfig={self.cluster.kubeconfig}",
        ]
        with self.log_path.open("ab") as out:
            process = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return process.pid

    def _ready(self) -> bool:
        if self.pid is None:
            tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise ClusterError(f"KServe's controller manager is not running:\n{tail}")
        url = f"http://127.0.0.1:{self._state().get('probe')}/readyz"
        return answers_ok(url)

    def _apply(self, *objects: dict[str, Any], check: bool = True) -> bool:
        stdin = "\n---\n".join(json.dumps(o) for o in objects)
        result = self.cluster.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            FIELD_MANAGER,
            "-f",
            "-",
            stdin=stdin,
            check=check,
        )
        return result.returncode == 0
