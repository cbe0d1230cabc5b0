"""The post-renderer that does cert-manager's part of KServe's chart."""

from __future__ import annotations

import base64
import json

from tests.harness.cert_stand_in import PROPAGATED_HEADERS, SECRET_NAME, render

CERT, KEY = b"-----CERT-----\n", b"-----KEY-----\n"


def chart() -> list[dict]:
    inject = {"cert-manager.io/inject-ca-from": "kserve/serving-cert"}
    return [
        {"apiVersion": "cert-manager.io/v1", "kind": "Issuer", "metadata": {"name": "i"}},
        {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": "c"}},
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "v", "annotations": dict(inject)},
            "webhooks": [{"name": "a", "clientConfig": {"service": {"name": "s"}}}] * 2,
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "inferenceservice-config"},
            "data": {"router": json.dumps({"image": "kserve/router:v0.20.0"}), "deploy": "{}"},
        },
        None,
    ]


def test_cert_managers_objects_go_and_its_work_is_done_by_hand() -> None:
    out = render(chart(), CERT, KEY)
    kinds = [o["kind"] for o in out]
    assert kinds == ["ValidatingWebhookConfiguration", "ConfigMap", "Secret"]
    hook = out[0]
    assert "cert-manager.io/inject-ca-from" not in hook["metadata"]["annotations"]
    for webhook in hook["webhooks"]:
        assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == CERT
        assert webhook["clientConfig"]["service"] == {"name": "s"}  # the chart's own Service
    secret = out[-1]
    assert secret["metadata"]["name"] == SECRET_NAME and secret["type"] == "kubernetes.io/tls"
    assert base64.b64decode(secret["data"]["tls.key"]) == KEY


def test_the_router_is_told_to_pass_the_trace_headers_on_and_nothing_else_changes() -> None:
    config = render(chart(), CERT, KEY)[1]
    router = json.loads(config["data"]["router"])
    assert router == {
        "image": "kserve/router:v0.20.0",
        "headers": {"propagate": PROPAGATED_HEADERS},
    }
    assert config["data"]["deploy"] == "{}"
