"""InferencePipeline v1alpha1: spec and status, the single source of the CRD schema.

Field names are snake_case in Python and camelCase on the wire (``by_alias``). Cross-field
rules that the apiserver can check are CEL rules (``x-kubernetes-validations``) attached
with :func:`cel`; the rest (graph cycles through nested nodes, GPU fit, the GJSON syntax of
Switch conditions) is checked by :mod:`pipeline_operator.api.validation` and reported in status.
A CEL rule that reads an optional field without a schema default tests ``has()`` first: the
apiserver refuses an object whose rule reads an absent field. Success conditions are
compiled when a spec is read (:mod:`pipeline_operator.api.success_condition`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from pipeline_operator.api import json_path, success_condition

GROUP = "pipelines.inference.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferencePipeline"
PLURAL = "inferencepipelines"
SINGULAR = "inferencepipeline"
SHORT_NAMES = ["ipl", "pipeline"]
# Rollout commands are this annotation's value, ``<verb>:<id>``; the operator acknowledges
# each value in status.lastCommand.
COMMAND_ANNOTATION = f"{GROUP}/command"
# The environment the planner gives every container, which a spec may not set: the pipeline,
# stage and revision it serves (its metrics say so), the GPUs a predictor's replica was given
# (the kit's predictors then serve on CUDA or fail at load), and where KServe's storage
# initializer finds a custom container's model.
PIPELINE_ENV = "INFERENCE_PIPELINE"
STAGE_ENV = "INFERENCE_PIPELINE_STAGE"
REVISION_ENV = "INFERENCE_PIPELINE_REVISION"
GPUS_ENV = "INFERENCE_PIPELINE_GPUS"
STORAGE_URI_ENV = "STORAGE_URI"
RESERVED_ENV = (PIPELINE_ENV, STAGE_ENV, REVISION_ENV, GPUS_ENV, STORAGE_URI_ENV)

MAX_STAGES = 16
MAX_POOLS = 16
MAX_NODES = 16
MAX_STEPS = 16
MAX_ROLLOUT_STEPS = 32

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Kubernetes' resource.Quantity (the pattern its OpenAPI schema and KServe's carry), without
# the minus sign: <number> then a binary-SI suffix, a decimal-SI suffix or a decimal exponent.
QUANTITY = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

StageName = Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=24)]
PoolName = Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=63)]
NodeName = Annotated[str, Field(pattern=DNS_LABEL, min_length=1, max_length=40)]
Quantity = Annotated[str, Field(pattern=QUANTITY, max_length=32)]
Duration = Annotated[str, Field(pattern=DURATION, max_length=32)]
Label = Annotated[str, Field(max_length=253)]


def parse_duration(value: str) -> timedelta:
    """Parse a Go-style duration such as ``30s``, ``1m30s`` or ``250ms``."""
    seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))
    return timedelta(seconds=seconds)


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """Attach CEL validation rules ``(rule, message)`` to a model's schema."""
    validations = []
    for rule, message in rules:
        entry = {"rule": rule}
        entry["messageExpression" if message.startswith("'") else "message"] = message
        validations.append(entry)
    return {"x-kubernetes-validations": validations}


class ApiModel(BaseModel):
    """Base: camelCase aliases, unknown fields refused (the CRD prunes them too)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", use_enum_values=True
    )


# -- placement -------------------------------------------------------------------------------


class Toleration(ApiModel):
    """A Kubernetes toleration (core/v1 Toleration)."""

    key: Label | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: Label | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class NodePool(ApiModel):
    """A set of nodes that stages can be placed on, e.g. ``gpu-h100`` or ``cpu``."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("!has(self.gpusPerNode) || self.gpusPerNode >= 0", "gpusPerNode must not be negative"),
        )
    )

    name: PoolName = Field(description="Pool name that stages refer to in stages[].nodePool.")
    node_selector: dict[str, Label] = Field(
        default_factory=dict, description="Labels a node must carry to be in this pool."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=16, description="Tolerations for the pool's taints."
    )
    affinity: dict[str, Any] | None = Field(
        default=None, description="A core/v1 Affinity applied to every stage in this pool."
    )
    gpu_resource: Label = Field(
        default="nvidia.com/gpu", description="Extended resource name of the pool's GPUs."
    )
    gpus_per_node: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="GPUs on each node of the pool; when set, a stage asking for more is "
        "reported as unschedulable instead of being deployed.",
    )


# -- stages ----------------------------------------------------------------------------------


class EnvVar(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    value: Annotated[str, Field(max_length=4096)] = ""


class ModelFormat(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="Model format, e.g. huggingface, pytorch, sklearn, onnx."
    )
    version: Annotated[str, Field(max_length=32)] | None = None


class ModelSpec(ApiModel):
    """A model served by a KServe runtime (the predictor's ``model`` field)."""

    model_format: ModelFormat
    storage_uri: Annotated[str, Field(min_length=1, max_length=1024)] = Field(
        description="Where KServe's storage initializer fetches the model (mounted at /mnt/models)."
    )
    runtime: Annotated[str, Field(max_length=63)] | None = Field(
        default=None, description="ServingRuntime name; KServe picks one by format when empty."
    )
    protocol_version: Literal["v1", "v2"] | None = None
    args: list[Annotated[str, Field(max_length=1024)]] = Field(default_factory=list, max_length=32)
    env: list[EnvVar] = Field(default_factory=list, max_length=64)


class ContainerSecurity(ApiModel):
    """Who a custom container runs as. The rest of the restricted profile (no privilege
    escalation, every capability dropped, the runtime's seccomp profile) always applies."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!(self.runAsNonRoot && has(self.runAsUser) && self.runAsUser == 0)",
                "runAsUser 0 is root: set runAsNonRoot to false to run as root",
            ),
        )
    )

    run_as_non_root: bool = Field(
        default=True,
        description="Refuse to start an image that would run as root (false: a third-party "
        "server image that needs root).",
    )
    run_as_user: int | None = Field(default=None, ge=0, le=2147483647)
    run_as_group: int | None = Field(default=None, ge=0, le=2147483647)


class ContainerSpec(ApiModel):
    """A custom model server container (a KServe custom predictor or a transformer)."""

    image: Annotated[str, Field(min_length=1, max_length=512)]
    command: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list, max_length=32
    )
    args: list[Annotated[str, Field(max_length=1024)]] = Field(default_factory=list, max_length=32)
    env: list[EnvVar] = Field(default_factory=list, max_length=64)
    port: int = Field(default=8080, ge=1, le=65535, description="Port the server listens on.")
    storage_uri: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None,
        description="Files the container reads (a model, a tokenizer): KServe's storage "
        "initializer puts them at /mnt/models before the container starts (the container's "
        "STORAGE_URI), e.g. pvc://models/sentiment-v1.",
    )
    security_context: ContainerSecurity | None = Field(
        default=None, description="Who the container runs as (default: any non-root user)."
    )


class PredictorSpec(ApiModel):
    """What serves the stage: a KServe model, or a custom container."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.model) != has(self.container)",
                "exactly one of model or container must be set",
            ),
        )
    )

    model: ModelSpec | None = None
    container: ContainerSpec | None = None


class Resources(ApiModel):
    """Per-replica resources of the stage's predictor (requests = limits for GPUs)."""

    gpus: int = Field(default=0, ge=0, le=64, description="GPUs per replica.")
    cpu: Quantity = Field(
        default="1",
        description="CPU request and limit per replica: a Kubernetes quantity, e.g. `500m`, `4`.",
    )
    memory: Quantity = Field(
        default="2Gi",
        description="Memory request and limit per replica: a Kubernetes quantity, e.g. `512Mi`, "
        "`16Gi`, `1e9`.",
    )


class Scaling(ApiModel):
    """Autoscaling of one stage, independent of the others."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas"),
        )
    )

    min_replicas: int = Field(default=1, ge=0, le=1000)
    max_replicas: int = Field(default=1, ge=1, le=1000)
    metric: Literal["concurrency", "rps", "cpu", "memory"] = Field(
        default="cpu",
        description="KServe scaleMetric: cpu or memory (HPA, Standard mode), concurrency or rps "
        "(Knative, Serverless mode).",
    )
    target: int = Field(
        default=80, ge=1, le=100000, description="KServe scaleTarget (percent for cpu/memory)."
    )


class Batching(ApiModel):
    """KServe's request batcher in front of the predictor."""

    max_batch_size: int = Field(default=32, ge=1, le=4096)
    max_latency_ms: int = Field(default=50, ge=1, le=60000)


class TransformerSpec(ContainerSpec):
    """The stage's pre/post-processing container, on CPU nodes (never on a GPU pool)."""

    cpu: Quantity = Field(default="1", description="CPU request and limit per replica.")
    memory: Quantity = Field(default="1Gi", description="Memory request and limit per replica.")


class Stage(ApiModel):
    """One step of the pipeline: a predictor, optionally behind a transformer."""

    name: StageName = Field(description="Stage name, unique in the pipeline.")
    predictor: PredictorSpec
    transformer: TransformerSpec | None = Field(
        default=None, description="Pre/post-processing container in front of the predictor."
    )
    resources: Resources = Field(default_factory=Resources)
    node_pool: PoolName | None = Field(
        default=None, description="Name of a spec.nodePools entry to place the stage on."
    )
    scaling: Scaling = Field(default_factory=Scaling)
    batching: Batching | None = None


# -- graph -----------------------------------------------------------------------------------


class NodeType(StrEnum):
    SEQUENCE = "Sequence"
    ENSEMBLE = "Ensemble"
    SWITCH = "Switch"


class GraphStep(ApiModel):
    """A step of a graph node: a stage, or another node of the graph."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("has(self.stage) != has(self.node)", "exactly one of stage or node must be set"),
        )
    )

    stage: StageName | None = None
    node: NodeName | None = None
    dependency: Literal["Soft", "Hard"] = Field(
        default="Hard", description="Hard: a failed step fails the request; Soft: it is skipped."
    )
    condition: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None,
        description="A GJSON path. Switch: on the node's input; the first step whose path "
        "matches something is taken (none: the request fails). Sequence (not the first step): "
        "on the previous step's response; the step runs only when it matches, otherwise the "
        "Sequence ends with that response, e.g. `predictions.#(confident==false)` to escalate "
        "only low-confidence answers.",
    )
    data: Literal["Request", "Response"] | None = Field(
        default=None,
        description="Sequence only: pass the original request or the previous step's response "
        "(default: Response after the first step).",
    )


class GraphNode(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.steps.all(s, !has(s.node) || s.node != self.name)",
                "a node cannot contain itself",
            ),
            (
                "self.type == 'Switch' ? self.steps.all(s, has(s.condition)) "
                ": self.type == 'Sequence' ? !has(self.steps[0].condition) "
                ": self.steps.all(s, !has(s.condition))",
                "condition is required on every step of a Switch node, allowed on the steps of "
                "a Sequence after the first, and nowhere else",
            ),
        )
    )

    name: NodeName
    type: NodeType = NodeType.SEQUENCE
    steps: list[GraphStep] = Field(min_length=1, max_length=MAX_STEPS)


class Graph(ApiModel):
    """How stages compose. Without a graph, stages run as one Sequence in the listed order."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.nodes.exists(n, n.name == self.root)",
                "'root ' + self.root + ' is not a node of graph.nodes'",
            ),
            (
                "self.nodes.all(n, self.nodes.exists_one(m, m.name == n.name))",
                "graph node names must be unique",
            ),
            (
                "self.nodes.all(n, n.steps.all(s, !has(s.node) || "
                "self.nodes.exists(m, m.name == s.node)))",
                "every step's node must name a node of graph.nodes",
            ),
        )
    )

    root: NodeName = "root"
    nodes: list[GraphNode] = Field(min_length=1, max_length=MAX_NODES)


# -- rollout ---------------------------------------------------------------------------------


class Pause(ApiModel):
    duration: Duration | None = Field(
        default=None, description="How long to pause; without it, wait for a promote."
    )


class Header(ApiModel):
    """A header sent as written."""

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9-]+$")]
    value: Annotated[str, Field(max_length=4096)] = Field(
        description="Sent as written, and shown to whoever reads the pipeline: no secrets."
    )


class SecretKeyRef(ApiModel):
    """One key of a Secret in the pipeline's namespace."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class HeaderSource(ApiModel):
    secret_key_ref: SecretKeyRef = Field(
        description="Read at each measurement; the operator must be allowed to read it "
        "(the chart's `rbac.secretReads`). Never shown in status, Events or logs."
    )


class WebHeader(ApiModel):
    """A header of a web call: a value as written, or one read from a Secret."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            ("has(self.value) != has(self.valueFrom)", "set exactly one of value and valueFrom"),
        )
    )

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9-]+$")]
    value: Annotated[str, Field(max_length=4096)] | None = Field(
        default=None,
        description="Sent as written, and shown to whoever reads the pipeline: no secrets.",
    )
    value_from: HeaderSource | None = Field(
        default=None, description="A credential, e.g. `Authorization: Bearer ...`."
    )

    @model_validator(mode="after")
    def _one_source(self) -> WebHeader:
        if (self.value is None) == (self.value_from is None):
            raise ValueError(f"header {self.name}: set exactly one of value and valueFrom")
        return self


class WebMetric(ApiModel):
    """An HTTP call whose JSON answer holds the value (Argo Rollouts' web metric)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.body) || (has(self.method) && self.method == 'POST')",
                "a body needs method: POST",
            ),
        )
    )

    url: Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s]+$")] = Field(
        description="Where to call; {{revision}}, {{stable}} and {{pipeline}} are substituted."
    )
    method: Literal["GET", "POST"] = "GET"
    body: Annotated[str, Field(max_length=65536)] | None = Field(
        default=None, description="POST's JSON body, substituted like the URL."
    )
    headers: list[WebHeader] = Field(default_factory=list, max_length=16)
    json_path: Annotated[str, Field(min_length=1, max_length=512)] = Field(
        description="JSONPath into the answer to one number or boolean (true is 1), e.g. "
        "`$.accuracy` or `$.results[0].value`."
    )

    @field_validator("json_path")
    @classmethod
    def _path_parses(cls, path: str) -> str:
        if json_path.AVAILABLE:
            json_path.compile_path(path)
        return path

    @model_validator(mode="after")
    def _body_is_posted(self) -> WebMetric:
        if self.body is not None and self.method != "POST":
            raise ValueError("a body needs method: POST")
        return self


class JobMetric(ApiModel):
    """A Kubernetes Job run against the revisions (Argo Rollouts' job metric): the
    measurement succeeds when the Job completes and fails when it fails.

    Every container of the template gets ``CANARY_URL`` and ``STABLE_URL`` (each revision's
    own InferenceGraph, served while the canary is analysed), ``CANARY_REVISION``,
    ``STABLE_REVISION``, ``PIPELINE`` and ``NAMESPACE``. The last lines of the Job's log are
    kept in the measurement's message.
    """

    template: dict[str, Any] = Field(
        description="A core/v1 PodTemplateSpec (`metadata`, `spec`), e.g. the kit's "
        "evaluation image with a labelled set mounted from a ConfigMap. restartPolicy "
        "defaults to Never."
    )
    backoff_limit: int = Field(
        default=0, ge=0, le=10, description="Retries of a failed pod before the Job fails."
    )
    active_deadline: Duration = Field(
        default="10m", description="Longest the Job may run; past it the Job fails."
    )

    @field_validator("template")
    @classmethod
    def _runs_a_container(cls, template: dict[str, Any]) -> dict[str, Any]:
        spec = template.get("spec")
        containers = spec.get("containers") if isinstance(spec, dict) else None
        if not isinstance(containers, list) or not containers:
            raise ValueError("template.spec.containers: at least one container is required")
        for index, container in enumerate(containers):
            if not isinstance(container, dict) or not container.get("image"):
                raise ValueError(f"template.spec.containers[{index}].image is required")
            if not container.get("name"):
                raise ValueError(f"template.spec.containers[{index}].name is required")
        return template


JOB_SUCCEEDED = "result == 1"
"""A job metric's verdict: 1 when its Job completed, 0 when it failed."""


class AnalysisMetric(ApiModel):
    """One measured value: a PromQL ``query`` to the analysis' Prometheus, a ``web`` call, or
    a ``job`` whose exit decides."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "[has(self.query), has(self.web), has(self.job)].filter(x, x).size() == 1",
                "set exactly one of query (Prometheus), web or job",
            ),
            (
                "has(self.job) != has(self.successCondition)",
                "query and web metrics need a successCondition; a job metric's Job decides, "
                "without one",
            ),
        )
    )

    name: NodeName
    query: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        default=None,
        description="PromQL, sent to the analysis' Prometheus. {{revision}} (the canary), "
        "{{stable}} and {{pipeline}} are substituted.",
    )
    web: WebMetric | None = Field(
        default=None, description="An HTTP call instead of a query: the answer's value."
    )
    job: JobMetric | None = Field(
        default=None,
        description="A Job instead of a query: its exit decides. Each measurement runs one "
        "Job, so `count: 1` runs it once.",
    )
    success_condition: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None,
        description="CEL condition on `result`, the measured value (a double), e.g. "
        "`result >= 0.99`, `result < 500 && result > 0` or `!(result > 0.05)`. A NaN result "
        "fails. Required for query and web metrics; a job metric has none.",
    )
    interval: Duration = "30s"
    count: int = Field(default=3, ge=1, le=100, description="Measurements to take.")
    failure_limit: int = Field(default=0, ge=0, le=100, description="Failures tolerated.")
    consecutive_error_limit: int = Field(
        default=4,
        ge=0,
        le=100,
        description="Errors in a row tolerated (a query without data, an unreachable "
        "provider), each retried an interval later; one more fails the metric.",
    )
    timeout: Duration = Field(
        default="10s", description="Longest a query may take; a slower one is a failed measurement."
    )

    @field_validator("success_condition")
    @classmethod
    def _condition_compiles(cls, condition: str | None) -> str | None:
        if condition is not None and success_condition.AVAILABLE:
            success_condition.compile_condition(condition)
        return condition

    @model_validator(mode="after")
    def _one_source(self) -> AnalysisMetric:
        if sum(x is not None for x in (self.query, self.web, self.job)) != 1:
            raise ValueError("set exactly one of query (Prometheus), web or job")
        if (self.job is None) == (self.success_condition is None):
            raise ValueError(
                "query and web metrics need a successCondition; a job metric's Job decides, "
                "without one"
            )
        return self

    @property
    def condition(self) -> str:
        """The CEL condition the measured value is judged by."""
        return self.success_condition or JOB_SUCCEEDED


class Analysis(ApiModel):
    provider: Literal["prometheus"] = "prometheus"
    address: Annotated[str, Field(max_length=512, pattern=r"^https?://[^\s]+$")] | None = Field(
        default=None, description="Provider address; the operator's default when empty."
    )
    metrics: list[AnalysisMetric] = Field(min_length=1, max_length=8)


class SetCanaryScale(ApiModel):
    """How many replicas the canary runs from this step on (Argo Rollouts' setCanaryScale)."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.weight) ? !has(self.matchTrafficWeight) "
                ": has(self.matchTrafficWeight) && self.matchTrafficWeight",
                "setCanaryScale sets exactly one of weight or matchTrafficWeight: true",
            ),
        )
    )

    weight: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Percent of each stage's minReplicas and maxReplicas (at least 1), whatever "
        "the canary's traffic weight.",
    )
    match_traffic_weight: bool | None = Field(
        default=None, description="Follow the canary's traffic weight again (the default)."
    )


class SetMirror(ApiModel):
    """Copy a share of the live requests to the canary from this step on (shadow traffic):
    its answers are discarded and never waited on by the caller. Needs the Gateway API
    traffic routing."""

    percent: int = Field(
        ge=0, le=100, description="Share of the requests copied to the canary; 0 stops."
    )


class CanaryStep(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "[has(self.setWeight), has(self.pause), has(self.analysis), "
                "has(self.setCanaryScale), has(self.setMirror)].filter(x, x).size() == 1",
                "a canary step sets exactly one of setWeight, pause, analysis, setCanaryScale "
                "or setMirror",
            ),
        )
    )

    set_weight: int | None = Field(default=None, ge=0, le=100, description="Canary traffic %.")
    pause: Pause | None = None
    analysis: Analysis | None = None
    set_canary_scale: SetCanaryScale | None = None
    set_mirror: SetMirror | None = None


class Canary(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",
                "setWeight steps must not decrease",
            ),
        )
    )

    steps: list[CanaryStep] = Field(
        default=[{"setWeight": 20}, {"pause": {}}],
        validate_default=True,
        max_length=MAX_ROLLOUT_STEPS,
        description="Steps walked in order; after the last, the canary becomes stable (100%).",
    )
    dynamic_stable_scale: bool = Field(
        default=False,
        description="Shrink the stable revision's replicas to the share of traffic it still "
        "serves (at least 1 per stage), once the router serves the canary's weight "
        "(Argo Rollouts' dynamicStableScale). On a pool with no room for the canary's next "
        "replica, traffic moves as far as its ready pods carry, so the stable frees one: "
        "one replica of headroom per stage is enough. An abort sends all traffic back at once "
        "to a stable that then scales back up.",
    )


class BlueGreen(ApiModel):
    auto_promotion_seconds: int | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="Promote this long after the preview is ready; without it, wait for promote.",
    )
    scale_down_delay_seconds: int = Field(
        default=30, ge=0, le=86400, description="How long the old revision stays after promotion."
    )


HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"


class ParentRef(ApiModel):
    """A Gateway (listener) the pipeline's HTTPRoute attaches to."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
    namespace: Annotated[str, Field(max_length=63, pattern=DNS_LABEL)] | None = Field(
        default=None, description="The Gateway's namespace; default: the pipeline's."
    )
    section_name: Annotated[str, Field(max_length=253, pattern=DNS_SUBDOMAIN)] | None = Field(
        default=None, description="One listener of the Gateway; default: every listener."
    )


class GatewayRouting(ApiModel):
    """Route through a Gateway API HTTPRoute the operator owns: each revision is served by
    an InferenceGraph of its own, and the route splits, pins cohorts and mirrors."""

    parent_refs: list[ParentRef] = Field(min_length=1, max_length=8)
    hostnames: list[
        Annotated[
            str,
            Field(
                max_length=253,
                pattern=r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
            ),
        ]
    ] = Field(default_factory=list, max_length=16, description="Default: the Gateway's.")
    mirror_with: Literal["RequestMirror", "TraefikService"] = Field(
        default="RequestMirror",
        description="How setMirror steps copy requests to the canary. RequestMirror: the "
        "Gateway API's filter (the Gateway's class must list HTTPRouteRequestMirror, and "
        "HTTPRouteRequestPercentageMirror for a share under 100%). TraefikService: for "
        "Traefik, whose Gateway provider has no RequestMirror: the stable revision's backend "
        "becomes a TraefikService of kind mirroring that the operator owns (Traefik's "
        "kubernetesCRD provider on; the chart's gatewayAPI.traefikServices).",
    )


class HeaderMatch(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=256, pattern=HEADER_NAME)]
    value: Annotated[str, Field(min_length=1, max_length=4096)]
    type: Literal["Exact", "RegularExpression"] = "Exact"


class CookieMatch(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=256, pattern=HEADER_NAME)]
    value: Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^;,\s\\\"]+$")]


class Cohort(ApiModel):
    """Requests that always reach one revision (testers, a segment): matched by a header or
    a cookie, before any split."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.header) != has(self.cookie)",
                "a cohort sets exactly one of header or cookie",
            ),
        )
    )

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
    revision: Literal["Canary", "Stable"] = Field(
        description="Canary: the revision being rolled out (the stable one when none is)."
    )
    header: HeaderMatch | None = None
    cookie: CookieMatch | None = None

    @model_validator(mode="after")
    def _one_match(self) -> Cohort:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("a cohort sets exactly one of header or cookie")
        return self


class Stickiness(ApiModel):
    """Keep each user on one revision through a rollout: a user is named by a header or a
    cookie whose value ends in hex digits (a UUID, a hash of the user id); the canary serves
    the users whose last two digits fall in its share, so a user it took stays on it as
    its weight grows."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.header) != has(self.cookie)",
                "stickiness sets exactly one of header or cookie",
            ),
        )
    )

    header: Annotated[str, Field(min_length=1, max_length=256, pattern=HEADER_NAME)] | None = None
    cookie: Annotated[str, Field(min_length=1, max_length=256, pattern=HEADER_NAME)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Stickiness:
        if (self.header is None) == (self.cookie is None):
            raise ValueError("stickiness sets exactly one of header or cookie")
        return self


class TrafficRouting(ApiModel):
    """How a revision's share reaches it: without ``gatewayAPI``, KServe's InferenceGraph
    Splitter (draws per request); with it, a Gateway API HTTPRoute, which also pins cohorts,
    keeps users sticky and mirrors."""

    gateway_api: GatewayRouting | None = Field(default=None, alias="gatewayAPI")
    cohorts: list[Cohort] = Field(default_factory=list, max_length=8)
    stickiness: Stickiness | None = None


class Notification(ApiModel):
    """A webhook called once per rollout transition (each Event the rollout posts), with a
    JSON body of the transition; see docs/operations.md for the body."""

    url: Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s]+$")]
    reasons: list[Annotated[str, Field(pattern=r"^[A-Za-z]+$", max_length=64)]] = Field(
        default_factory=list,
        max_length=32,
        description="Event reasons to send, e.g. RolloutStarted, Aborted, RolloutCompleted; "
        "empty: every transition.",
    )
    headers: list[Header] = Field(default_factory=list, max_length=16)


WebhookType = Literal["PreRollout", "Step", "ConfirmPromotion", "PostRollout", "Rollback"]
GATE_TYPES: tuple[WebhookType, ...] = ("PreRollout", "Step", "ConfirmPromotion", "Rollback")
"""The webhook types the rollout waits on (PostRollout is told, not waited on)."""


class Webhook(ApiModel):
    """A rollout gate (Flagger's webhooks): a JSON POST whose answer lets the canary go on.

    ``PreRollout``: once the canary is Ready, before any traffic moves to it; ``Step``: at
    each step, once the router serves its weight. A 2xx answer passes; anything else, after
    the retries, aborts the rollout. ``ConfirmPromotion``: after the last step; the rollout
    waits, asking again every 10 s, until it answers 2xx. ``Rollback``: asked every 10 s while
    the canary is in progress; a 2xx answer aborts it. ``PostRollout``: told once the rollout
    is promoted or aborted (a failure is a Warning Event, nothing more). The body is in
    docs/operations.md.
    """

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
    type: WebhookType
    url: Annotated[str, Field(max_length=2048, pattern=r"^https?://[^\s]+$")]
    headers: list[Header] = Field(default_factory=list, max_length=16)
    timeout: Duration = Field(default="10s", description="For each try.")
    retries: int = Field(
        default=2, ge=0, le=5, description="Tries after the first on no answer or a 5xx."
    )
    metadata: dict[str, Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict, max_length=16, description="Sent as the body's `metadata`."
    )


class Rollout(ApiModel):
    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.strategy == 'Canary' || !has(self.canary)",
                "canary is only valid with strategy Canary",
            ),
            (
                "self.strategy == 'BlueGreen' || !has(self.blueGreen)",
                "blueGreen is only valid with strategy BlueGreen",
            ),
            (
                "self.strategy == 'Canary' || !has(self.webhooks) || self.webhooks.size() == 0",
                "webhooks are only valid with strategy Canary",
            ),
            (
                "!has(self.webhooks) || self.webhooks.all(w, "
                "self.webhooks.filter(x, x.name == w.name).size() == 1)",
                "webhook names must be unique",
            ),
            (
                "(has(self.trafficRouting) && has(self.trafficRouting.gatewayAPI)) || "
                "!has(self.canary) || self.canary.steps.all(s, !has(s.setMirror))",
                "setMirror steps need trafficRouting.gatewayAPI: KServe's Splitter cannot mirror",
            ),
            (
                "(has(self.trafficRouting) && has(self.trafficRouting.gatewayAPI)) || "
                "!has(self.trafficRouting) || ((!has(self.trafficRouting.cohorts) || "
                "self.trafficRouting.cohorts.size() == 0) && !has(self.trafficRouting.stickiness))",
                "cohorts and stickiness need trafficRouting.gatewayAPI: KServe's Splitter "
                "routes on neither headers nor cookies",
            ),
        )
    )

    strategy: Literal["Canary", "BlueGreen"] = "Canary"
    canary: Canary | None = None
    blue_green: BlueGreen | None = None
    progress_deadline_seconds: int = Field(
        default=600,
        ge=10,
        le=86400,
        description="A new revision not Ready within this time aborts the rollout.",
    )
    notifications: list[Notification] = Field(
        default_factory=list, max_length=4, description="Webhooks told of each transition."
    )
    webhooks: list[Webhook] = Field(
        default_factory=list,
        max_length=8,
        description="Gates of a canary rollout: webhooks it waits on or is told of.",
    )
    traffic_routing: TrafficRouting = Field(default_factory=TrafficRouting)

    @model_validator(mode="after")
    def _routing_can_do_it(self) -> Rollout:
        routing = self.traffic_routing
        if routing.gateway_api is not None:
            return self
        steps = self.canary.steps if self.canary is not None else []
        if any(step.set_mirror is not None for step in steps):
            raise ValueError(
                "setMirror steps need trafficRouting.gatewayAPI: KServe's Splitter cannot mirror"
            )
        if routing.cohorts or routing.stickiness is not None:
            raise ValueError(
                "cohorts and stickiness need trafficRouting.gatewayAPI: KServe's Splitter "
                "routes on neither headers nor cookies"
            )
        return self

    @model_validator(mode="after")
    def _webhooks_fit(self) -> Rollout:
        if self.webhooks and self.strategy != "Canary":
            raise ValueError("webhooks are only valid with strategy Canary")
        names = [w.name for w in self.webhooks]
        if len(set(names)) != len(names):
            raise ValueError("webhook names must be unique")
        return self


# -- spec ------------------------------------------------------------------------------------


class InferencePipelineSpec(ApiModel):
    """Desired state: stages on node pools, how they compose, how new versions roll out."""

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.stages.all(s, self.stages.exists_one(t, t.name == s.name))",
                "stage names must be unique",
            ),
            (
                "!has(self.nodePools) || "
                "self.nodePools.all(p, self.nodePools.exists_one(q, q.name == p.name))",
                "nodePool names must be unique",
            ),
            (
                "self.stages.all(s, !has(s.nodePool) || (has(self.nodePools) && "
                "self.nodePools.exists(p, p.name == s.nodePool)))",
                "every stages[].nodePool must name an entry of spec.nodePools",
            ),
            (
                "!has(self.graph) || self.graph.nodes.all(n, n.steps.all(s, !has(s.stage) || "
                "self.stages.exists(t, t.name == s.stage)))",
                "every graph step's stage must name a stage of spec.stages",
            ),
        )
    )

    node_pools: list[NodePool] = Field(default_factory=list, max_length=MAX_POOLS)
    stages: list[Stage] = Field(min_length=1, max_length=MAX_STAGES)
    graph: Graph | None = None
    rollout: Rollout = Field(default_factory=Rollout)
    paused: bool = Field(
        default=False, description="Pause the rollout in progress (resume: false)."
    )

    @field_validator("stages")
    @classmethod
    def _unique_stage_names(cls, stages: list[Stage]) -> list[Stage]:
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError("stage names must be unique")
        return stages

    def effective_graph(self) -> Graph:
        """The graph, or the default: one Sequence over the stages in order."""
        if self.graph is not None:
            return self.graph
        steps = [GraphStep(stage=s.name) for s in self.stages]
        return Graph(
            root="root", nodes=[GraphNode(name="root", type=NodeType.SEQUENCE, steps=steps)]
        )

    def pool(self, name: str | None) -> NodePool | None:
        return next((p for p in self.node_pools if p.name == name), None)

    def serving_fields(self) -> dict[str, Any]:
        """What changes how requests are served; the revision hash is taken over this.

        Fields left at their defaults are left out, so a field added to the API (with a
        default) changes no existing pipeline's revision, and an upgrade starts no rollout.
        """
        return self.model_dump(
            by_alias=True,
            mode="json",
            include={"node_pools", "stages", "graph"},
            exclude_defaults=True,
        )


# -- status ----------------------------------------------------------------------------------


class Phase(StrEnum):
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    ABORTED = "Aborted"


class StatusModel(BaseModel):
    """Status objects: written by the operator only, so unknown fields are tolerated."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Condition(StatusModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str
    observed_generation: int | None = None


class TrafficTarget(StatusModel):
    revision: str
    weight: int = Field(ge=0, le=100)


class StageStatus(StatusModel):
    name: str
    service: str = Field(description="The stage's InferenceService.")
    ready: bool = False
    message: str = ""
    replicas: int = Field(
        default=0, description="Pods the InferenceService asks for at least (minReplicas)."
    )
    ready_replicas: int = 0
    pending: int = Field(default=0, description="Pods not running yet.")
    unschedulable: str = Field(
        default="",
        description="Why the scheduler cannot place the pending pods (their PodScheduled "
        "condition), e.g. `0/6 nodes are available: 2 Insufficient nvidia.com/gpu, ...`.",
    )
    container_error: str = Field(
        default="",
        description="Why a container of the stage's pods does not run (waiting in an error "
        "state), e.g. `kserve-container: CreateContainerConfigError: container has "
        "runAsNonRoot and image will run as root`.",
    )


class RevisionStatus(StatusModel):
    name: str = Field(description="Content hash of the revision's serving fields.")
    stages: list[StageStatus] = Field(default_factory=list)
    ready: bool = False


class RouterStatus(StatusModel):
    graph: str = Field(description="The InferenceGraph whose router this is.")
    rolled_out: bool = Field(
        default=False,
        description="Every router replica serves the graph's current routes (KServe restarts "
        "the router on every graph change).",
    )
    message: str = ""


class ApplyError(StatusModel):
    kind: str
    name: str
    message: str = Field(
        description="Why the apiserver or an admission webhook refused the object."
    )


class CommandAck(StatusModel):
    command: str = Field(description="The command annotation value that was handled.")
    result: Literal["Accepted", "Rejected"]
    message: str = ""
    at: str


class Measurement(StatusModel):
    metric: str
    value: float | None = None
    success: bool
    error: bool = Field(
        default=False,
        description="The provider produced no value (unreachable, timeout, a bad query): not "
        "a measurement of the canary, unless consecutiveErrorLimit is exceeded.",
    )
    no_data: bool = Field(
        default=False,
        description="The query matched no series (the canary's pods not scraped yet, or "
        "labels they do not carry): neither a failure nor an error; measured again an "
        "interval later, within the rollout's progress deadline. Only the latest is kept.",
    )
    message: str = ""
    at: str


class AnalysisStatus(StatusModel):
    step_index: int = Field(
        description="The canary step whose analysis this is (0-based index: step 1 is 0)."
    )
    revision: str
    phase: Literal["Running", "Successful", "Failed"] = "Running"
    measurements: list[Measurement] = Field(default_factory=list)
    message: str = ""


class WebhookCall(StatusModel):
    name: str
    success: bool = Field(description="It answered 2xx.")
    message: str = ""
    at: str


class GateStatus(StatusModel):
    type: WebhookType
    step_index: int | None = Field(
        default=None, description="Step webhooks: the step (0-based) they were called at."
    )
    revision: str
    phase: Literal["Waiting", "Passed", "Failed"] = "Waiting"
    calls: list[WebhookCall] = Field(
        default_factory=list, description="The latest call of each webhook of this type."
    )
    message: str = ""


class InferencePipelineStatus(StatusModel):
    observed_generation: int | None = None
    phase: Phase | None = None
    message: str = ""
    stable_revision: str | None = None
    stable_ready_at: str | None = Field(
        default=None,
        description="When the stable revision was first seen Ready. None: it never was (a "
        "first deployment that did not come up), and a new revision then replaces it at once, "
        "without a rollout.",
    )
    canary_revision: str | None = Field(
        default=None, description="The revision being rolled out (blue-green: the preview)."
    )
    previous_revision: str | None = Field(
        default=None, description="Blue-green: the old revision kept until scale-down."
    )
    strategy: Literal["Canary", "BlueGreen"] | None = None
    current_step_index: int | None = Field(
        default=None,
        description="The canary step in progress, as a 0-based index into the steps (message "
        "and step count from 1: index 1 is step 2/4); the number of steps once all are done.",
    )
    step_started_at: str | None = None
    paused_at: str | None = Field(
        default=None,
        description="When the current pause step began (blue-green: when the preview became "
        "Ready and the rollout started waiting for promotion).",
    )
    spec_paused_at: str | None = Field(
        default=None,
        description="When spec.paused began holding the rollout; its timers stand still until "
        "it is released.",
    )
    waiting_since: str | None = Field(
        default=None,
        description="Since when the revision being brought up has not been Ready; the progress "
        "deadline counts from here.",
    )
    pending_revision: str | None = Field(
        default=None,
        description="A revision the spec asks for that spec.paused keeps from rolling out: "
        "nothing of it is deployed until paused is set back to false.",
    )
    scale_down_at: str | None = None
    abort_reason: str | None = None
    traffic: list[TrafficTarget] = Field(default_factory=list)
    canary_weight: int = 0
    mirror_percent: int = Field(
        default=0, description="Share of the requests copied to the canary (setMirror)."
    )
    canary_scale: int | None = Field(
        default=None,
        description="Percent of each stage's replicas the canary runs (at least 1): its "
        "weight, or a setCanaryScale step's.",
    )
    stable_scale: int | None = Field(
        default=None,
        description="dynamicStableScale: percent of each stage's replicas the stable runs; "
        "unset: all of them.",
    )
    revisions: list[RevisionStatus] = Field(default_factory=list)
    conditions: list[Condition] = Field(default_factory=list)
    url: str | None = None
    preview_url: str | None = None
    analysis: AnalysisStatus | None = None
    gates: list[GateStatus] = Field(
        default_factory=list, description="The webhook gates of the canary in progress."
    )
    last_command: CommandAck | None = None
    ready: str = Field(default="", description="Ready stages of the serving revisions, e.g. 3/3.")
    step: str = Field(
        default="-",
        description="The canary step in progress, counted from 1 as in message (2/4); - when "
        "none is (kubectl get's Step column).",
    )
    weight: str = Field(
        default="-",
        description="The canary or preview weight while a rollout is in progress (30%); - when "
        "none is (kubectl get's Weight column).",
    )
    routers: list[RouterStatus] = Field(
        default_factory=list, description="The routers of the pipeline's InferenceGraphs."
    )
    apply_errors: list[ApplyError] = Field(
        default_factory=list,
        description="Children the last reconcile could not write, with the refusal.",
    )
