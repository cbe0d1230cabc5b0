"""Containers of a stage: a KServe model, a custom predictor, a transformer."""

from __future__ import annotations

from typing import Any

from pipeline_operator.api.v1alpha1 import (
    PIPELINE_ENV,
    REVISION_ENV,
    STAGE_ENV,
    STORAGE_URI_ENV,
    ContainerSecurity,
    ContainerSpec,
    EnvVar,
    ModelSpec,
)

# KServe finds the serving container of a component by this name.
KSERVE_CONTAINER = "kserve-container"
MODEL_NAME_ARG = "--model_name"  # how KServe's model servers take the served model's name


def build_identity_env(pipeline: str, stage: str, revision: str) -> list[dict[str, str]]:
    """The environment that tells a stage's containers what they serve."""
    return [
        {"name": PIPELINE_ENV, "value": pipeline},
        {"name": STAGE_ENV, "value": stage},
        {"name": REVISION_ENV, "value": revision},
    ]


def build_security_context(
    run_as_non_root: bool = True, security: ContainerSecurity | None = None
) -> dict[str, Any]:
    """A restricted-profile container securityContext; ``security`` says who it runs as."""
    out: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if security is not None:
        run_as_non_root = security.run_as_non_root
        if security.run_as_user is not None:
            out["runAsUser"] = security.run_as_user
        if security.run_as_group is not None:
            out["runAsGroup"] = security.run_as_group
    if run_as_non_root:
        out["runAsNonRoot"] = True
    return out


def build_env(env: list[EnvVar]) -> list[dict[str, str]]:
    return [{"name": e.name, "value": e.value} for e in env]


def build_container(
    container: ContainerSpec,
    resources: dict[str, Any],
    identity: list[dict[str, str]],
    model_name: str | None = None,
) -> dict[str, Any]:
    """A custom container (predictor or transformer), hardened, on ``container.port``.

    ``model_name``: a custom predictor must serve its model under the InferenceService's
    name (KServe's router calls ``/v1/models/<name>:predict``); like KServe does for
    transformers, ``--model_name`` is added unless the args set it.
    """
    out: dict[str, Any] = {"name": KSERVE_CONTAINER, "image": container.image}
    if container.command:
        out["command"] = list(container.command)
    args = list(container.args)
    if model_name is not None and not any(a.split("=")[0] == MODEL_NAME_ARG for a in args):
        args.append(f"{MODEL_NAME_ARG}={model_name}")
    if args:
        out["args"] = args
    out["env"] = [*identity, *build_env(container.env)]
    if container.storage_uri:
        out["env"].append({"name": STORAGE_URI_ENV, "value": container.storage_uri})
    out["ports"] = [{"name": "http1", "containerPort": container.port, "protocol": "TCP"}]
    out["resources"] = resources
    out["securityContext"] = build_security_context(security=container.security_context)
    return out


def build_model(
    model: ModelSpec, resources: dict[str, Any], identity: list[dict[str, str]]
) -> dict[str, Any]:
    """The predictor's ``model`` field, served by a KServe ServingRuntime.

    The runtime's image is not ours, so runAsNonRoot is left to the runtime; the rest of the
    restricted profile applies.
    """
    model_format: dict[str, str] = {"name": model.model_format.name}
    if model.model_format.version:
        model_format["version"] = model.model_format.version
    out: dict[str, Any] = {"modelFormat": model_format, "storageUri": model.storage_uri}
    if model.runtime:
        out["runtime"] = model.runtime
    if model.protocol_version:
        out["protocolVersion"] = model.protocol_version
    if model.args:
        out["args"] = list(model.args)
    out["env"] = [*identity, *build_env(model.env)]
    out["resources"] = resources
    out["securityContext"] = build_security_context(run_as_non_root=False)
    return out
