"""A Helm post-renderer that does cert-manager's part of KServe's chart, for clusters without it.

KServe's chart asks cert-manager for its webhook certificate: an Issuer, a Certificate whose
Secret the controller manager mounts, and ``cert-manager.io/inject-ca-from`` on every webhook
configuration. The local cluster runs no cert-manager (three more controllers, their images
and CRDs, for one certificate nothing else needs). This post-renderer reads the rendered
chart on stdin and writes it on stdout with the Issuer and Certificate left out, the Secret
added (the certificate and key the harness made), each webhook given the certificate as its
``caBundle``, and the router told which headers to pass on (the chart has no value for it).
Everything else is the chart's.

    helm install ... --post-renderer python --post-renderer-args -m \
      --post-renderer-args tests.harness.cert_stand_in --post-renderer-args CERT_DIR
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

CERT_MANAGER_GROUP = "cert-manager.io/"
INJECT_ANNOTATION = "cert-manager.io/inject-ca-from"
WEBHOOK_KINDS = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
SECRET_NAME = "kserve-webhook-server-cert"
NAMESPACE = "kserve"
# Headers the InferenceGraph router passes from a request to every hop it makes: regular
# expressions over canonical header names, as KServe's router reads them.
PROPAGATED_HEADERS = ["(?i)^traceparent$", "(?i)^tracestate$", "(?i)^x-request-id$"]


def render(
    documents: Iterable[dict[str, Any] | None], cert: bytes, key: bytes
) -> list[dict[str, Any]]:
    """The chart's objects with cert-manager's work done by hand (see the module docstring)."""
    ca_bundle = base64.b64encode(cert).decode()
    out: list[dict[str, Any]] = []
    for doc in documents:
        if not doc or str(doc.get("apiVersion", "")).startswith(CERT_MANAGER_GROUP):
            continue
        if doc.get("kind") in WEBHOOK_KINDS:
            doc["metadata"].get("annotations", {}).pop(INJECT_ANNOTATION, None)
            for hook in doc.get("webhooks", []):
                hook["clientConfig"]["caBundle"] = ca_bundle
        if doc.get("kind") == "ConfigMap" and doc["metadata"]["name"] == "inferenceservice-config":
            router = json.loads(doc["data"]["router"])
            router["headers"] = {"propagate": PROPAGATED_HEADERS}
            doc["data"]["router"] = json.dumps(router, indent=2)
        out.append(doc)
    out.append(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": NAMESPACE},
            "type": "kubernetes.io/tls",
            "data": {
                "tls.crt": ca_bundle,
                "tls.key": base64.b64encode(key).decode(),
            },
        }
    )
    return out


def main(argv: list[str]) -> None:
    cert_dir = Path(argv[0])
    documents = yaml.safe_load_all(sys.stdin.read())
    rendered = render(
        documents, (cert_dir / "tls.crt").read_bytes(), (cert_dir / "tls.key").read_bytes()
    )
    sys.stdout.write(yaml.safe_dump_all(rendered, sort_keys=False))


if __name__ == "__main__":
    main(sys.argv[1:])
