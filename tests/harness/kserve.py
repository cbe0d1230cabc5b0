"""KServe's own control plane on a local cluster: its controller manager and webhooks, as pods.

Installed the way KServe documents for its version: its CRDs from its module's manifests, then
``helm install`` of its ``kserve-resources`` chart in Standard (raw Deployment) mode, with the
images replaced by the local builds (``make images`` builds KServe's manager, router and the
chart's metrics proxy from the pinned module). The chart's webhook certificate comes from
cert-manager, which the local cluster does not run: a post-renderer (:mod:`cert_stand_in`)
does its part. KServe's ClusterServingRuntimes are applied from its module with their images
pinned. The controller manager then runs on the real CPU node, its webhooks are called by the
apiserver through their Service, and InferenceServices become Ready the way they do on any
cluster: KServe creates their Deployments, and kubelets (or kwok, on the fake nodes) run them.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.harness.helm import Helm
from tests.harness.processes import ProcessFigures, find_processes, log, wait_until
from tests.harness.tools import REPO_ROOT

if TYPE_CHECKING:
    from tests.harness.cluster import Cluster

NAMESPACE = "kserve"
RELEASE = "kserve"
FIELD_MANAGER = "local-kserve"
WEBHOOK_SERVICE = f"kserve-webhook-server-service.{NAMESPACE}.svc"


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


def self_signed_certificate(dns_name: str) -> tuple[bytes, bytes]:
    """A self-signed serving certificate for ``dns_name`` (PEM cert, PEM key); its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)])
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
            x509.SubjectAlternativeName([x509.DNSName(dns_name)]),
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
    """KServe's chart, installed (or upgraded) on one cluster with Helm."""

    def __init__(self, cluster: Cluster, workdir: Path) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.config_dir = cluster.tools.root / "kserve-config"
        self.version = cluster.tools.versions()["KSERVE_VERSION"]
        # The post-renderer is a module of this harness.
        self.helm = Helm(
            cluster.tools, cluster.kubeconfig, workdir / "helm", PYTHONPATH=str(REPO_ROOT)
        )

    def values(self) -> dict[str, Any]:
        """The chart values: Standard mode, the local images (never pulled), no Ingress
        objects or Istio virtual hosts (neither exists here), small requests for a 2-core
        machine."""
        small = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
        return {
            "kserve": {
                "version": self.version,
                "controller": {
                    "deploymentMode": "Standard",
                    "imagePullPolicy": "IfNotPresent",
                    "resources": small,
                    "rbacProxy": {"resources": small},
                    "gateway": {"disableIngressCreation": True, "disableIstioVirtualHost": True},
                },
                "router": {"imagePullPolicy": "IfNotPresent"},
            }
        }

    @property
    def pid(self) -> int | None:
        """The controller manager's process on this machine (a container of a real node is a
        process here too); None while none runs."""
        found = find_processes(
            lambda argv: (
                argv[0] == b"/manager" and any(a.startswith(b"--metrics-addr") for a in argv)
            )
        )
        return found[0] if found else None

    def figures(self) -> ProcessFigures | None:
        """Peak RSS and CPU time of the running manager so far."""
        pid = self.pid
        return ProcessFigures.of(pid) if pid else None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 300) -> None:
        """Install or upgrade the chart, wait for the manager, then apply the runtimes."""
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        certs = self._write_certificate()
        values = self.workdir / "values.yaml"
        values.write_text(yaml.safe_dump(self.values()), encoding="utf-8")
        self.helm.run(
            "upgrade",
            "--install",
            RELEASE,
            str(self.config_dir / "charts" / "kserve-resources"),
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--values",
            str(values),
            "--post-renderer",
            sys.executable,
            "--post-renderer-args",
            "-m",
            "--post-renderer-args",
            "tests.harness.cert_stand_in",
            "--post-renderer-args",
            str(certs),
            "--wait",
            "--timeout",
            f"{int(timeout)}s",
            timeout=timeout + 60,
        )
        # The webhooks answer once the manager serves them: KServe's own validator admitting
        # its runtimes is the proof.
        wait_until(
            lambda: self._apply(*self._runtimes(), check=False),
            timeout,
            "KServe's webhooks to admit its ClusterServingRuntimes",
        )
        log(f"KServe {self.version} installed by Helm in {time.monotonic() - started:.1f}s")

    # -- pieces ----------------------------------------------------------------------------

    def _runtimes(self) -> list[dict[str, Any]]:
        """KServe's ClusterServingRuntimes, images pinned to the version."""
        directory = self.config_dir / "runtimes"
        images = kustomize_images(directory / "kustomization.yaml")
        out: list[dict[str, Any]] = []
        for path in sorted(directory.glob("*.yaml")):
            if path.name in ("kustomization.yaml", "configuration.yaml"):
                continue
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if doc:
                    for container in doc["spec"]["containers"]:
                        container["image"] = pinned_image(container["image"], self.version, images)
                    out.append(doc)
        return out

    def _write_certificate(self) -> Path:
        """The webhook Service's certificate, made once per cluster (its own CA)."""
        certs = self.workdir / "webhook-certs"
        if not (certs / "tls.crt").exists():
            cert, key = self_signed_certificate(WEBHOOK_SERVICE)
            certs.mkdir(parents=True, exist_ok=True)
            (certs / "tls.key").write_bytes(key)
            (certs / "tls.key").chmod(0o600)
            (certs / "tls.crt").write_bytes(cert)
        return certs

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
