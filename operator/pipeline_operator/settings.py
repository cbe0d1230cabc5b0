"""Operator settings, from flags and ``PIPELINE_OPERATOR_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline_operator.core.planner import PlanOptions


class OperatorSettings(BaseSettings):
    """How the operator runs. Every field can be set as ``PIPELINE_OPERATOR_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="PIPELINE_OPERATOR_")

    namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces to watch; empty = the whole cluster (needs a ClusterRole).",
    )
    lease_name: str | None = Field(
        default=None,
        description="Act only while holding this coordination.k8s.io Lease (replicas elect "
        "one leader through it); unset: act alone.",
    )
    lease_namespace: str | None = Field(
        default=None,
        description="Namespace of the Lease; unset: $POD_NAMESPACE, else the first watched "
        "namespace, else default.",
    )
    workers: int = Field(
        default=8, ge=1, le=64, description="Threads (and HTTP connections) for API writes."
    )
    analysis_workers: int = Field(
        default=4, ge=1, le=64, description="Threads for canary analysis queries."
    )
    deployment_mode: str | None = Field(
        default="Standard",
        description="KServe deployment mode annotated on every InferenceService "
        "(Standard = raw Deployments, Serverless = Knative); empty = KServe's default.",
    )
    field_manager: str = "inference-pipelines"
    metrics_port: int = Field(default=8080, ge=0, le=65535, description="0 disables metrics.")
    health_port: int = Field(default=8081, ge=0, le=65535, description="0 disables /healthz.")
    resync_seconds: float = Field(
        default=300, gt=0, description="Reconcile every pipeline at least this often."
    )
    watch_server_timeout: int = Field(
        default=300, ge=10, description="Seconds before the apiserver closes a watch."
    )
    watch_client_timeout: int = Field(
        default=330, ge=10, description="Seconds before the operator gives up on a watch."
    )
    prometheus_address: str | None = Field(
        default=None, description="Default Prometheus for analysis steps without an address."
    )
    gateway_api: bool = Field(
        default=False,
        description="Route pipelines that ask for it through Gateway API HTTPRoutes (the "
        "gateway.networking.k8s.io CRDs must be installed; HTTPRoutes are watched).",
    )
    traefik_services: bool = Field(
        default=False,
        description="Let pipelines mirror through Traefik TraefikServices (gatewayAPI."
        "mirrorWith: TraefikService; the traefik.io CRDs must be installed; they are watched).",
    )
    prometheus_bearer_token_file: Path | None = Field(
        default=None,
        description="File holding a bearer token for prometheus_address (re-read per query).",
    )
    prometheus_username: str | None = Field(
        default=None, description="Basic-auth user for prometheus_address."
    )
    prometheus_password_file: Path | None = Field(
        default=None, description="File holding the basic-auth password (re-read per query)."
    )
    prometheus_ca_file: Path | None = Field(
        default=None, description="CA bundle that signs prometheus_address's certificate."
    )
    drain_seconds: float = Field(
        default=30,
        ge=0,
        description="How long a retired revision's InferenceServices stay after the graph "
        "stopped routing to them, while KServe rolls the router out (0: delete at once).",
    )
    revision_history_limit: int = Field(
        default=10, ge=2, le=100, description="Revision snapshots kept per pipeline for undo."
    )
    router_node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="nodeSelector of the InferenceGraph router pods (JSON in the environment).",
    )
    router_tolerations: list[dict[str, Any]] = Field(
        default_factory=list, description="Tolerations of the router pods (JSON)."
    )
    router_affinity: dict[str, Any] | None = Field(
        default=None, description="Affinity of the router pods (JSON)."
    )
    router_resources: dict[str, Any] | None = Field(
        default=None,
        description="Requests and limits of the router container (JSON); KServe's router "
        "configuration when empty.",
    )
    router_min_replicas: int | None = Field(
        default=None, ge=0, description="minReplicas of every router; KServe's default if unset."
    )
    router_max_replicas: int | None = Field(
        default=None, ge=1, description="maxReplicas of every router; KServe's default if unset."
    )
    router_timeout_seconds: int | None = Field(
        default=None, ge=1, description="Request timeout of the routers, in seconds."
    )

    def plan_options(self) -> PlanOptions:
        """What the planner takes from these settings."""
        return PlanOptions(
            deployment_mode=self.deployment_mode or None,
            router_node_selector=self.router_node_selector,
            router_tolerations=tuple(self.router_tolerations),
            router_affinity=self.router_affinity,
            router_resources=self.router_resources,
            router_min_replicas=self.router_min_replicas,
            router_max_replicas=self.router_max_replicas,
            router_timeout_seconds=self.router_timeout_seconds,
        )
