"""The Helm chart and the plain manifests, checked by helm and by the real apiserver.

Every variant under charts/inference-pipelines/ci/ must lint clean and be accepted by the
apiserver; the RBAC must be exactly what the operator uses; the Deployment's flags and
environment must be ones the operator parses; a real `helm install` must schedule the operator
on a CPU node with its namespaced permissions, and `helm uninstall` must leave the CRD.

The InferencePipeline CRD is cluster-scoped and shared by the whole test session: no test here
creates, adopts or deletes it (installs use crds.enabled=false; keep-on-uninstall is checked on
the rendered CRD).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pipeline_operator.__main__ import parse_args
from pipeline_operator.api import v1alpha1 as api
from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, InferencePipelineStatus
from pipeline_operator.controller.leader import identity
from pipeline_operator.core.planner import Owner, plan
from pipeline_operator.settings import OperatorSettings
from tests.harness import Cluster, Topology
from tests.harness import helm as harness_helm
from tests.support import kubectl_json, wait_for

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "inference-pipelines"
VARIANTS = sorted(p.name.removesuffix("-values.yaml") for p in (CHART / "ci").glob("*-values.yaml"))
CRD_NAME = f"{api.PLURAL}.{api.GROUP}"

Rule = tuple[str, str, str]  # (apiGroup, resource, verb)
OWNER = Owner(name="p", namespace="ml", uid="u1")

# What the operator does in a namespace it watches (pipeline_operator/k8s/client.py, and kopf's
# watches that fill the operator's cache).
NAMESPACED_RULES: set[Rule] = {
    *((api.GROUP, "inferencepipelines", v) for v in ("get", "list", "watch", "patch")),
    *((api.GROUP, "inferencepipelines/status", v) for v in ("get", "patch")),
    *(
        ("serving.kserve.io", r, v)
        for r in ("inferenceservices", "inferencegraphs")
        for v in ("get", "list", "watch", "create", "patch", "delete")
    ),
    *(("apps", "controllerrevisions", v) for v in ("list", "watch", "create", "delete")),
    *(("apps", "deployments", v) for v in ("list", "watch")),
    *(("", "pods", v) for v in ("list", "watch")),
    ("", "events", "create"),
    ("events.k8s.io", "events", "create"),
    # Job analysis metrics (pipeline_operator/providers/job.py).
    *(("batch", "jobs", v) for v in ("get", "create")),
    ("", "pods/log", "get"),
}
# kopf lists and watches CRDs cluster-wide in every mode.
CRD_RULES: set[Rule] = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
}
NAMESPACE_RULES: set[Rule] = {("", "namespaces", "list"), ("", "namespaces", "watch")}
# With more than one replica, in the release's namespace: the leader Lease.
LEASE_RULES: set[Rule] = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}
# What namespace users get through the built-in ClusterRoles: edit and admin write pipelines
# (never their status), view (and edit and admin through it) reads them.
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
USER_WRITE_RULES: set[Rule] = {
    (api.GROUP, "inferencepipelines", v) for v in ("create", "update", "patch", "delete")
}
USER_READ_RULES: set[Rule] = {
    (api.GROUP, "inferencepipelines", v) for v in ("get", "list", "watch")
}


class Helm(harness_helm.Helm):
    """The pinned helm binary against the test cluster, with the chart's variants."""

    def template(self, variant: str, *extra: str, namespace: str = "operators") -> list[dict]:
        """The rendered chart of a ci variant, as a list of objects."""
        out = self.run(
            "template", "ipl", str(CHART), "--namespace", namespace, *values(variant), *extra
        ).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


def values(variant: str) -> list[str]:
    return ["--values", str(CHART / "ci" / f"{variant}-values.yaml")]


def only(objects: list[dict], kind: str) -> dict:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def rules_of(role: dict) -> set[Rule]:
    """A Role's or ClusterRole's rules as (group, resource, verb) triples (no wildcards)."""
    triples: set[Rule] = set()
    for rule in role.get("rules", []):
        assert "resourceNames" not in rule
        assert "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    triples.add((group, resource, verb))
    return triples


def aggregated_to(role: dict) -> frozenset[str]:
    """The built-in ClusterRoles (admin, edit, view) a ClusterRole's rules are added to."""
    labels = role["metadata"].get("labels", {})
    return frozenset(
        k.removeprefix(AGGREGATE) for k, v in labels.items() if k.startswith(AGGREGATE) and v
    )


def operator_role(objects: list[dict]) -> dict:
    """The operator's ClusterRole (the chart's other ClusterRoles are for users)."""
    mine = [o for o in objects if o["kind"] == "ClusterRole" and not aggregated_to(o)]
    return only(mine, "ClusterRole")


def allowed(cluster: Cluster, who: str, *args: str) -> bool:
    """The apiserver's answer to ``kubectl auth can-i --as who ARGS``."""
    result = cluster.kubectl("auth", "can-i", "--as", who, *args, check=False)
    return result.stdout.strip() == "yes"


def container(objects: list[dict]) -> dict:
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    return dict(pod["containers"][0])


@pytest.fixture(scope="module")
def helm(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(cluster.tools, cluster.kubeconfig, tmp_path_factory.mktemp("helm"))


# -- helm lint, the schema, the plain manifests ---------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_lint_strict_is_clean(helm: Helm, variant: str) -> None:
    result = helm.run("lint", "--strict", str(CHART), *values(variant), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


def test_ci_variants_cover_default_namespaced_and_ha() -> None:
    assert {"default", "namespaced", "ha"} <= set(VARIANTS)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--set", "replicas=-1"], "at '/replicas': minimum: got -1, want 0"),
        (["--set", "replicass=2"], "additional properties 'replicass' not allowed"),
        (["--set", "image.pullPolicy=Sometimes"], "at '/image/pullPolicy'"),
        (["--set", "settings.revisionHistoryLimit=1"], "at '/settings/revisionHistoryLimit'"),
        (["--set-json", 'watch.namespaces=["Team_A"]'], "at '/watch/namespaces/0'"),
        (["--set", "metrics.port=70000"], "at '/metrics/port'"),
    ],
    ids=["negative-replicas", "unknown-key", "pull-policy", "history", "namespace", "port"],
)
def test_schema_rejects_bad_values(helm: Helm, override: list[str], message: str) -> None:
    result = helm.run("template", "ipl", str(CHART), *override, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_install_manifest_is_up_to_date(helm: Helm) -> None:
    rendered = subprocess.run(
        ["bash", str(ROOT / "hack" / "render-manifests.sh"), "-"],
        capture_output=True,
        text=True,
        env={**helm.env, "HELM": helm.binary},
        timeout=120,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    committed = (ROOT / "manifests" / "install.yaml").read_text(encoding="utf-8")
    assert rendered.stdout == committed, (
        "manifests/install.yaml is stale: run hack/render-manifests.sh"
    )
    objects = [doc for doc in yaml.safe_load_all(committed) if doc]
    assert objects[0] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": "inference-pipelines",
            "labels": {"app.kubernetes.io/part-of": "inference-pipelines"},
        },
    }
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] == "Deployment"} == {
        "inference-pipelines"
    }


# -- what the apiserver accepts ---------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_chart_is_accepted_by_the_apiserver(
    helm: Helm, cluster: Cluster, namespace: str, variant: str
) -> None:
    # Watch the test's namespace (the ci files name namespaces that do not exist here).
    extra = ["--set-json", f'watch.namespaces=["{namespace}"]'] if variant == "namespaced" else []
    objects = helm.template(variant, *extra, namespace=namespace)
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    rest = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    apply = ("apply", "--server-side", "--force-conflicts", "--field-manager", "delivery-tests")
    for crd in crds:
        # The session's CRD: validated, never changed.
        assert crd["metadata"]["name"] == CRD_NAME
        cluster.kubectl(*apply, "--dry-run=server", "-f", "-", stdin=json.dumps(crd))
    result = cluster.kubectl(
        *apply,
        "--dry-run=server",
        "-f",
        "-",
        "-o",
        "name",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": rest}),
    )
    # `-o name` prints kind.group/name: compare kinds and names.
    accepted = sorted(
        f"{kind.split('.', 1)[0]}/{name}"
        for kind, name in (line.split("/", 1) for line in result.stdout.split())
    )
    assert accepted == sorted(f"{o['kind'].lower()}/{o['metadata']['name']}" for o in rest)


# -- RBAC: least privilege ---------------------------------------------------------------------


def test_cluster_wide_rbac_is_exactly_what_the_operator_uses(helm: Helm) -> None:
    objects = helm.template("default")
    role = operator_role(objects)
    assert rules_of(role) == NAMESPACED_RULES | CRD_RULES | NAMESPACE_RULES
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    account = only(objects, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]
    # Beside it, the leader Lease's Role alone: even one replica elects.
    leader = [o for o in objects if o["metadata"]["name"].endswith("-leader")]
    assert rules_of(leader_role(leader)[0]) == LEASE_RULES
    others = [o for o in objects if o["kind"] in ("Role", "RoleBinding") and o not in leader]
    assert others == []


def test_secret_reads_are_off_by_default_and_get_only_when_granted(helm: Helm) -> None:
    assert not any(
        "secrets" in rule["resources"]
        for role in helm.template("default")
        if role["kind"] in ("Role", "ClusterRole")
        for rule in role.get("rules", [])
    )
    granted = operator_role(helm.template("default", "--set", "rbac.secretReads.enabled=true"))
    assert rules_of(granted) - (NAMESPACED_RULES | CRD_RULES | NAMESPACE_RULES) == {
        ("", "secrets", "get")
    }
    named = helm.template(
        "default",
        "--set",
        "rbac.secretReads.enabled=true",
        "--set",
        "rbac.secretReads.names={eval-token}",
    )
    (rule,) = [r for r in operator_role(named)["rules"] if "secrets" in r["resources"]]
    assert rule == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get"],
        "resourceNames": ["eval-token"],
    }


def test_analysis_jobs_can_be_switched_off_alone(helm: Helm) -> None:
    off = operator_role(helm.template("default", "--set", "rbac.analysisJobs.enabled=false"))
    assert (NAMESPACED_RULES | CRD_RULES | NAMESPACE_RULES) - rules_of(off) == {
        ("batch", "jobs", "get"),
        ("batch", "jobs", "create"),
        ("", "pods/log", "get"),
    }


def leader_role(objects: list[dict], namespace: str = "operators") -> tuple[dict, dict]:
    """The Role and RoleBinding for the leader Lease, in the release's namespace."""
    role = only([o for o in objects if o["metadata"]["name"].endswith("-leader")], "Role")
    binding = only(
        [o for o in objects if o["metadata"]["name"] == role["metadata"]["name"]], "RoleBinding"
    )
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    return role, binding


def test_ha_rbac_adds_only_the_leader_lease(helm: Helm) -> None:
    objects = helm.template("ha")
    assert rules_of(operator_role(objects)) == NAMESPACED_RULES | CRD_RULES | NAMESPACE_RULES
    role, binding = leader_role(objects)
    assert rules_of(role) == LEASE_RULES
    account = only(objects, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


@pytest.mark.parametrize("replicas", [1, 2])
def test_namespaced_rbac_has_no_cluster_wide_access_to_pipelines(helm: Helm, replicas: int) -> None:
    objects = helm.template("namespaced", "--set", f"replicas={replicas}")
    watched = yaml.safe_load((CHART / "ci" / "namespaced-values.yaml").read_text())["watch"][
        "namespaces"
    ]
    # Cluster-wide: only kopf's CRD discovery.
    assert rules_of(operator_role(objects)) == CRD_RULES
    leader = [o for o in objects if o["metadata"]["name"].endswith("-leader")]
    watching = [o for o in objects if o not in leader]
    roles = {o["metadata"]["namespace"]: o for o in watching if o["kind"] == "Role"}
    bindings = {o["metadata"]["namespace"]: o for o in watching if o["kind"] == "RoleBinding"}
    assert sorted(roles) == sorted(bindings) == sorted(watched)
    account = only(objects, "ServiceAccount")["metadata"]
    for ns in watched:
        assert rules_of(roles[ns]) == NAMESPACED_RULES
        assert bindings[ns]["roleRef"]["kind"] == "Role"
        assert bindings[ns]["roleRef"]["name"] == roles[ns]["metadata"]["name"]
        assert bindings[ns]["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": "operators"}
        ]
    assert rules_of(leader_role(leader)[0]) == LEASE_RULES  # one replica elects too


@pytest.mark.parametrize("variant", VARIANTS)
def test_namespace_users_get_pipelines_through_the_built_in_roles(helm: Helm, variant: str) -> None:
    roles = {
        aggregated_to(o): rules_of(o)
        for o in helm.template(variant)
        if o["kind"] == "ClusterRole" and aggregated_to(o)
    }
    assert roles == {
        frozenset({"admin", "edit"}): USER_WRITE_RULES,
        frozenset({"admin", "edit", "view"}): USER_READ_RULES,
    }
    without = helm.template(variant, "--set", "rbac.create=false")
    assert not [o for o in without if o["kind"] == "ClusterRole"]


# -- the Deployment's contract with the operator ---------------------------------------------


def _settings_from(objects: list[dict], monkeypatch: pytest.MonkeyPatch) -> OperatorSettings:
    """Parse the rendered command line and PIPELINE_OPERATOR_* env as the operator would."""
    main = container(objects)
    assert main["command"] == ["python", "-m", "pipeline_operator"]
    for var in main["env"]:
        if var["name"].startswith("PIPELINE_OPERATOR_"):
            field = var["name"].removeprefix("PIPELINE_OPERATOR_").lower()
            assert field in OperatorSettings.model_fields, var["name"]
            monkeypatch.setenv(var["name"], var["value"])
    return parse_args(main["args"])


def test_default_deployment_watches_the_cluster_and_elects_even_alone(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One replica holds the Lease too: `kubectl scale` or a helm upgrade to two replicas (a
    rolling update's surge pod) never runs two unfenced writers."""
    objects = helm.template("default")
    settings = _settings_from(objects, monkeypatch)
    assert settings.namespaces == []
    assert settings.lease_name == "ipl-inference-pipelines"
    assert settings.deployment_mode == "Standard"
    assert (settings.metrics_port, settings.health_port) == (8080, 8081)
    assert settings.resync_seconds == 300
    assert settings.revision_history_limit == 10
    deployment = only(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # A budget of one pod for one replica would block every node drain.
    assert not [o for o in objects if o["kind"] in ("PodDisruptionBudget", "ServiceMonitor")]


def test_a_standalone_operator_is_one_replica_replaced_by_recreate(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = helm.template("default", "--set", "leaderElection.enabled=false")
    assert _settings_from(objects, monkeypatch).lease_name is None
    assert only(objects, "Deployment")["spec"]["strategy"]["type"] == "Recreate"
    assert not [o for o in objects if o["metadata"]["name"].endswith("-leader")]
    two = helm.run(
        "template",
        "ipl",
        str(CHART),
        "--set",
        "leaderElection.enabled=false",
        "--set",
        "replicas=2",
        check=False,
    )
    assert two.returncode != 0 and "set replicas to 1" in two.stderr


@pytest.mark.parametrize("username", ["", "analysis"])
def test_prometheus_credentials_and_ca_come_from_mounted_secrets(
    helm: Helm, monkeypatch: pytest.MonkeyPatch, username: str
) -> None:
    objects = helm.template(
        "default",
        *("--set", "settings.prometheusAddress=https://prometheus.monitoring:9090"),
        *("--set", "settings.prometheusAuth.secretName=prom-auth"),
        *("--set", f"settings.prometheusAuth.username={username}"),
        *("--set", "settings.prometheusAuth.caSecretName=prom-ca"),
    )
    settings = _settings_from(objects, monkeypatch)
    mounts = {m["name"]: m["mountPath"] for m in container(objects)["volumeMounts"]}
    volumes = {
        v["name"]: v["secret"]["secretName"]
        for v in only(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }
    assert volumes == {"prometheus-auth": "prom-auth", "prometheus-ca": "prom-ca"}
    auth, ca = Path(mounts["prometheus-auth"]), Path(mounts["prometheus-ca"])
    assert settings.prometheus_ca_file == ca / "ca.crt"
    if username:
        assert settings.prometheus_username == username
        assert settings.prometheus_password_file == auth / "password"
        assert settings.prometheus_bearer_token_file is None
    else:
        assert settings.prometheus_bearer_token_file == auth / "token"
        assert settings.prometheus_password_file is None


ROUTER_OPTIONS = [
    ("nodeSelector", {"pool": "cpu"}, "nodeSelector", {"pool": "cpu"}),
    ("tolerations", [{"key": "routers", "operator": "Exists"}], "tolerations", None),
    ("affinity", {"nodeAffinity": {}}, "affinity", None),
    ("resources", {"requests": {"cpu": "200m"}}, "resources", None),
    ("minReplicas", 2, "minReplicas", None),
    ("maxReplicas", 5, "maxReplicas", None),
    ("timeoutSeconds", 45, "timeout", None),
]


@pytest.mark.parametrize(
    ("value", "setting", "field", "expected"), ROUTER_OPTIONS, ids=[o[0] for o in ROUTER_OPTIONS]
)
def test_each_router_value_reaches_the_planned_graph(
    helm: Helm,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    setting: object,
    field: str,
    expected: object,
) -> None:
    objects = helm.template("default", "--set-json", f"router.{value}={json.dumps(setting)}")
    options = _settings_from(objects, monkeypatch).plan_options()
    spec = InferencePipelineSpec.model_validate(
        {"stages": [{"name": "m", "predictor": {"container": {"image": "m:1"}}}]}
    )
    status = InferencePipelineStatus.model_validate(
        {"stableRevision": "r1", "traffic": [{"revision": "r1", "weight": 100}]}
    )
    [graph] = [
        o for o in plan(OWNER, {"r1": spec}, status, options) if o["kind"] == "InferenceGraph"
    ]
    assert graph["spec"][field] == (setting if expected is None else expected)


def test_drain_seconds_is_a_chart_value(helm: Helm, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = helm.template("default", "--set-json", "settings.drainSeconds=7.5")
    assert _settings_from(objects, monkeypatch).drain_seconds == 7.5


def test_namespaced_deployment_passes_one_flag_per_namespace(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings_from(helm.template("namespaced"), monkeypatch)
    assert settings.namespaces == ["team-a", "team-b"]


def test_ha_deployment_elects_a_leader_and_has_a_disruption_budget(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = helm.template("ha")
    settings = _settings_from(objects, monkeypatch)
    assert settings.lease_name == "ipl-inference-pipelines"
    assert settings.lease_namespace is None  # the pod's namespace, from POD_NAMESPACE
    env = {e["name"]: e.get("valueFrom") for e in container(objects)["env"]}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert only(objects, "Deployment")["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = only(objects, "PodDisruptionBudget")
    deployment = only(objects, "Deployment")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert pdb["spec"]["minAvailable"] == 1
    assert deployment["spec"]["replicas"] == 2
    env = {e["name"]: e.get("value") for e in container(objects)["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"


def test_each_replica_is_a_leader_candidate_by_its_pod_name(
    helm: Helm, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = container(helm.template("ha"))["env"]
    from_name = [
        e for e in env if e.get("valueFrom") == {"fieldRef": {"fieldPath": "metadata.name"}}
    ]
    monkeypatch.delenv("POD_ID", raising=False)
    for var in from_name:
        monkeypatch.setenv(var["name"], "ipl-inference-pipelines-7d9c5-x2x4q")
    # The Lease's holder names the pod, and a restarted container is a new candidate.
    assert identity().startswith("ipl-inference-pipelines-7d9c5-x2x4q-")
    assert identity() != identity()


def test_pod_is_locked_down(helm: Helm) -> None:
    objects = helm.template("default")
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    main = container(objects)
    security = main["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert set(main["resources"]) == {"requests", "limits"}
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"http-metrics": 8080, "http-health": 8081}
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert main[probe]["httpGet"] == {"path": path, "port": "http-health"}
    selector = only(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance"}


def test_metrics_service_and_optional_service_monitor(helm: Helm) -> None:
    objects = helm.template("default")
    service = only(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": 8080, "targetPort": "http-metrics", "protocol": "TCP"}
    ]
    labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()

    objects = helm.template(
        "default",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set-json",
        'metrics.serviceMonitor.labels={"release":"prometheus"}',
    )
    monitor = only(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] == "http-metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        only(objects, "Service")["metadata"]["labels"].items()
    )

    objects = helm.template("default", "--set", "metrics.enabled=false")
    assert not [o for o in objects if o["kind"] == "Service"]
    assert "--metrics-port=0" in container(objects)["args"]


def test_image_reference_from_values(helm: Helm) -> None:
    digest = "sha256:" + "a" * 64
    image = container(helm.template("default"))["image"]
    assert image == "ghcr.io/inference-pipelines/operator:0.1.0"
    pinned = helm.template(
        "default",
        "--set",
        "image.repository=registry.example/ops/op",
        "--set",
        "image.tag=1.2",
        "--set",
        f"image.digest={digest}",
    )
    assert container(pinned)["image"] == f"registry.example/ops/op:1.2@{digest}"


def test_names_are_truncated_to_63_characters(helm: Helm) -> None:
    objects = helm.template("namespaced", "--set", "fullnameOverride=" + "x" * 80)
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]


def test_crd_is_templated_and_kept_on_uninstall(helm: Helm) -> None:
    crd = next(o for o in helm.template("default") if o["metadata"]["name"] == CRD_NAME)
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/name"] == "inference-pipelines"
    unkept = next(
        o
        for o in helm.template("default", "--set", "crds.keep=false")
        if o["metadata"]["name"] == CRD_NAME
    )
    assert "annotations" not in unkept["metadata"]
    without = helm.template("default", "--set", "crds.enabled=false")
    assert not [o for o in without if o["kind"] == "CustomResourceDefinition"]


def test_the_command_policy_can_be_turned_off_alone(helm: Helm) -> None:
    def kinds(*extra: str) -> set[str]:
        return {o["kind"] for o in helm.template("default", *extra)}

    assert {"CustomResourceDefinition", "ValidatingAdmissionPolicy"} <= kinds()
    without = kinds("--set", "commandPolicy.enabled=false")
    assert "CustomResourceDefinition" in without
    assert not {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} & without


def test_the_chart_refuses_a_kubernetes_without_admission_policies(helm: Helm) -> None:
    """ValidatingAdmissionPolicy is GA (admissionregistration.k8s.io/v1) from 1.30."""
    old = helm.run("template", "ipl", str(CHART), "--kube-version", "1.29.0", check=False)
    assert old.returncode != 0
    assert "kubeVersion" in old.stderr
    helm.run("template", "ipl", str(CHART), "--kube-version", "1.30.0")


# -- a real helm install -------------------------------------------------------------------


@pytest.fixture
def release(helm: Helm, namespace: str) -> Iterator[str]:
    """A release name, uninstalled afterwards even when the test fails."""
    name = f"ipl-{uuid.uuid4().hex[:6]}"
    yield name
    helm.run("uninstall", name, "--namespace", namespace, "--wait", "--timeout", "60s", check=False)


def test_helm_install_namespaced_schedules_on_cpu_and_uninstall_keeps_the_crd(
    helm: Helm, cluster: Cluster, namespace: str, release: str
) -> None:
    crd_uid = kubectl_json(cluster, "get", "crd", CRD_NAME)["metadata"]["uid"]
    installed = helm.run(
        "install",
        release,
        str(CHART),
        "--namespace",
        namespace,
        *values("namespaced"),
        "--set",
        "crds.enabled=false",
        "--set-json",
        f'watch.namespaces=["{namespace}"]',
        "--timeout",
        "90s",
    )
    assert "kubectl get ipl" in installed.stdout
    assert "kubectl pipeline status" in installed.stdout
    fullname = f"{release}-inference-pipelines"
    selector = f"app.kubernetes.io/instance={release}"

    def ready_pod() -> dict | None:
        # Ready: a real node's kubelet runs the image `make images` built, and its probes
        # pass with the chart's securityContext (non-root, read-only root filesystem).
        pods = kubectl_json(cluster, "get", "pods", "-n", namespace, "-l", selector)["items"]
        ready = [
            p
            for p in pods
            if p["status"].get("containerStatuses")
            and all(c.get("ready") for c in p["status"]["containerStatuses"])
        ]
        return ready[0] if len(pods) == 1 and ready else None

    pod = wait_for(ready_pod, 120, "the operator pod to be Ready")
    node = kubectl_json(cluster, "get", "node", pod["spec"]["nodeName"])
    assert node["metadata"]["labels"][Topology.load().pool_label] == "cpu"
    assert not node["spec"].get("taints")

    for kind in ("serviceaccount", "role", "rolebinding", "deployment"):
        cluster.kubectl("get", kind, fullname, "-n", namespace)
    cluster.kubectl("get", "service", f"{fullname}-metrics", "-n", namespace)
    cluster.kubectl("get", "clusterrole", fullname)

    # The apiserver's own answer: allowed in the watched namespace, nothing beyond it.
    account = f"system:serviceaccount:{namespace}:{fullname}"

    def can(*args: str) -> bool:
        return allowed(cluster, account, *args)

    assert can("patch", f"{api.PLURAL}.{api.GROUP}", "-n", namespace)
    assert can("patch", f"{api.PLURAL}.{api.GROUP}", "--subresource=status", "-n", namespace)
    assert can("delete", "inferenceservices.serving.kserve.io", "-n", namespace)
    # Server-side apply that creates an object is authorised as create.
    assert can("create", "inferenceservices.serving.kserve.io", "-n", namespace)
    assert can("create", "inferencegraphs.serving.kserve.io", "-n", namespace)
    assert can("create", "controllerrevisions.apps", "-n", namespace)
    assert can("create", "events", "-n", namespace)
    assert can("watch", "customresourcedefinitions.apiextensions.k8s.io")
    assert not can("list", f"{api.PLURAL}.{api.GROUP}", "--all-namespaces")
    assert not can("list", f"{api.PLURAL}.{api.GROUP}", "-n", "default")
    assert not can("delete", f"{api.PLURAL}.{api.GROUP}", "-n", namespace)
    assert not can("get", "secrets", "-n", namespace)
    assert not can("create", "deployments.apps", "-n", namespace)
    assert not can("list", "namespaces")

    # Users bound to the built-in admin, edit or view ClusterRole in the namespace, which the
    # controller-manager extends with the chart's aggregated rules.
    pipelines = f"{api.PLURAL}.{api.GROUP}"
    for role in ("admin", "edit", "view"):
        binding = (f"{role}-user", f"--clusterrole={role}", f"--user={role}-user")
        cluster.kubectl("create", "rolebinding", *binding, "-n", namespace)
    wait_for(
        lambda: (
            allowed(cluster, "edit-user", "create", pipelines, "-n", namespace)
            and allowed(cluster, "view-user", "watch", pipelines, "-n", namespace)
        ),
        60,
        "the built-in edit and view ClusterRoles to aggregate the chart's rules",
    )
    for user in ("admin-user", "edit-user", "view-user"):
        writes = user != "view-user"
        for verb in ("get", "list", "watch"):
            assert allowed(cluster, user, verb, pipelines, "-n", namespace), (user, verb)
        for verb in ("create", "update", "patch", "delete"):
            assert allowed(cluster, user, verb, pipelines, "-n", namespace) == writes, (user, verb)
        assert not allowed(
            cluster, user, "patch", pipelines, "--subresource=status", "-n", namespace
        )
        # kubectl pipeline history and undo read the spec snapshots
        assert allowed(cluster, user, "list", "controllerrevisions.apps", "-n", namespace)
        assert not allowed(cluster, user, "list", pipelines, "-n", "default")

    helm.run("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "60s")

    def released() -> bool:
        left = cluster.kubectl(
            "get",
            "deployment,serviceaccount,role,rolebinding,service",
            "-n",
            namespace,
            "-l",
            selector,
            "-o",
            "name",
        ).stdout.strip()
        roles = cluster.kubectl("get", "clusterrole", "-l", selector, "-o", "name").stdout
        return not left and not roles.strip()

    wait_for(released, 60, "helm uninstall to remove the release's objects")
    assert kubectl_json(cluster, "get", "crd", CRD_NAME)["metadata"]["uid"] == crd_uid


def test_gateway_api_routing_adds_the_httproute_rules_and_setting_only_when_enabled(
    helm: Helm,
) -> None:
    objects = helm.template("default", "--set", "gatewayAPI.enabled=true")
    gateways = {("gateway.networking.k8s.io", r, "get") for r in ("gateways", "gatewayclasses")}
    assert (
        rules_of(operator_role(objects)) - (NAMESPACED_RULES | CRD_RULES | NAMESPACE_RULES)
        == {
            ("gateway.networking.k8s.io", "httproutes", v)
            for v in ("get", "list", "watch", "create", "patch", "delete")
        }
        | gateways
    )
    # Watching one namespace, the operator still reads the Gateways of others, and classes.
    namespaced = helm.template(
        "default", "--set", "gatewayAPI.enabled=true", "--set-json", 'watch.namespaces=["ml"]'
    )
    assert rules_of(operator_role(namespaced)) - CRD_RULES == gateways
    (container,) = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert {"name": "PIPELINE_OPERATOR_GATEWAY_API", "value": "true"} in container["env"]
    (default,) = only(helm.template("default"), "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert all(e["name"] != "PIPELINE_OPERATOR_GATEWAY_API" for e in default["env"])


def test_traefik_services_add_their_rules_and_setting_only_with_the_gateway_api(
    helm: Helm,
) -> None:
    both = ("--set", "gatewayAPI.enabled=true", "--set", "gatewayAPI.traefikServices=true")
    routes_only = helm.template("default", "--set", "gatewayAPI.enabled=true")
    objects = helm.template("default", *both)
    assert rules_of(operator_role(objects)) - rules_of(operator_role(routes_only)) == {
        ("traefik.io", "traefikservices", v)
        for v in ("get", "list", "watch", "create", "patch", "delete")
    }
    (container,) = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert {"name": "PIPELINE_OPERATOR_TRAEFIK_SERVICES", "value": "true"} in container["env"]
    # Without the Gateway API there is no route to mirror through: neither rule nor setting.
    alone = helm.template("default", "--set", "gatewayAPI.traefikServices=true")
    assert not any(g == "traefik.io" for g, _, _ in rules_of(operator_role(alone)))
    (plain,) = only(alone, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert all(e["name"] != "PIPELINE_OPERATOR_TRAEFIK_SERVICES" for e in plain["env"])
