"""The installed ``kubectl-pipeline`` executable against the real apiserver and operator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import pipelines as p
from tests.harness import Cluster
from tests.harness.operator_process import OperatorProcess

pytestmark = pytest.mark.cluster

STEPS = [{"setWeight": 30}, {"pause": {}}]
ROLLOUT = {"strategy": "Canary", "canary": {"steps": STEPS}}


def executable() -> str:
    found = shutil.which("kubectl-pipeline", path=str(Path(sys.prefix) / "bin"))
    assert found, "kubectl-pipeline is not installed in the venv (pip install -e .)"
    return found


def plugin(
    *args: str, kubeconfig: Path | None = None, code: int = 0, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the plugin; assert its exit code; stdout and stderr in the result."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    flags = ["--kubeconfig", str(kubeconfig)] if kubeconfig else []
    done = subprocess.run(
        [executable(), *args, *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        input=stdin,
        check=False,
    )
    assert done.returncode == code, (
        f"kubectl-pipeline {' '.join(args)}: exit {done.returncode}, expected {code}\n"
        f"stdout: {done.stdout}\nstderr: {done.stderr}"
    )
    return done


def spec_paused(cluster: Cluster, namespace: str) -> bool:
    return bool(p.get(cluster, namespace, "clf")["spec"].get("paused", False))


def get_wide(cluster: Cluster, namespace: str) -> dict[str, str]:
    """The one row of ``kubectl get ipl -o wide``, by column (cells split at the headers)."""
    header, row = cluster.kubectl("get", "ipl", "-o", "wide", "-n", namespace).stdout.splitlines()
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    ends = [*starts[1:], None]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends, strict=True)}


def test_rollout_commands_end_to_end(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    kc = cluster.kubeconfig
    ns = ["-n", namespace]
    p.apply(cluster, p.classifier("clf", namespace, **ROLLOUT))
    first = p.wait_status(cluster, namespace, "clf", "first revision Healthy", phase="Healthy")
    v1 = first["stableRevision"]

    listed = plugin("list", *ns, kubeconfig=kc).stdout.splitlines()
    assert listed[0].split() == ["NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "READY", "AGE"]
    assert listed[1].split()[:4] == ["clf", "Healthy", v1, "-"]
    wide = get_wide(cluster, namespace)
    assert (wide["PHASE"], wide["STABLE"], wide["WEIGHT"], wide["STEP"]) == (
        "Healthy",
        v1,
        "-",
        "-",
    )
    assert wide["MESSAGE"] == f"revision {v1} serves 100%"
    as_yaml = yaml.safe_load(plugin("list", *ns, "-o", "yaml", kubeconfig=kc).stdout)
    assert as_yaml["kind"] == "List" and [o["metadata"]["name"] for o in as_yaml["items"]] == [
        "clf"
    ]
    every = plugin("list", "-A", kubeconfig=kc).stdout
    assert namespace in every and v1 in every

    refused = plugin("promote", "clf", *ns, kubeconfig=kc, code=1)
    assert refused.stderr.strip() == (
        f"error: nothing to promote: pipeline clf is Healthy at revision {v1}"
    )
    plugin("abort", "clf", *ns, kubeconfig=kc, code=1)

    # a canary paused at 30% until promoted
    p.apply(cluster, p.classifier("clf", namespace, model="bert-v2", **ROLLOUT))
    st = p.wait_status(
        cluster, namespace, "clf", "canary paused at 30%", canaryWeight=30, phase="Paused"
    )
    v2 = st["canaryRevision"]
    shown = plugin("status", "clf", *ns, kubeconfig=kc).stdout
    assert "Phase:        Paused" in shown
    assert f"{v1}   stable   70%" in shown and f"{v2}   canary   30%" in shown
    # steps counted from 1, as the operator's message counts them
    assert f"Message:      canary {v2} at 30%, step 2/2: paused until promote" in shown
    assert "-> 2  pause (until promote)" in shown
    assert "1  setWeight 30%  (done)" in shown
    assert "classify" in shown and "Ready" in shown
    wide = get_wide(cluster, namespace)
    assert (wide["CANARY"], wide["WEIGHT"], wide["STEP"]) == (v2, "30%", "2/2")
    assert wide["URL"] == st.get("url", "<none>")
    assert wide["MESSAGE"] == f"canary {v2} at 30%, step 2/2: paused until promote"
    as_json = json.loads(plugin("status", "clf", *ns, "-o", "json", kubeconfig=kc).stdout)
    assert (as_json["status"]["step"], as_json["status"]["weight"]) == ("2/2", "30%")

    # pause and resume flip spec.paused; a paused rollout cannot be promoted
    assert "paused" in plugin("pause", "clf", *ns, kubeconfig=kc).stdout
    assert spec_paused(cluster, namespace)
    held = plugin("promote", "clf", *ns, kubeconfig=kc, code=1)
    assert "spec.paused" in held.stderr
    assert "already paused" in plugin("pause", "clf", *ns, kubeconfig=kc).stdout
    assert "resumed" in plugin("resume", "clf", *ns, kubeconfig=kc).stdout
    assert not spec_paused(cluster, namespace)

    # promote: acknowledged by the operator; the canary becomes stable
    promoted = plugin("promote", "clf", *ns, kubeconfig=kc)
    assert "promote accepted" in promoted.stdout
    watched = plugin(
        "status", "clf", "--watch", "--timeout", "30", "--interval", "0.2", *ns, kubeconfig=kc
    )
    assert "Healthy" in watched.stdout.splitlines()[-1]
    st = p.wait_status(cluster, namespace, "clf", "v2 stable", phase="Healthy", stableRevision=v2)

    history = plugin("history", "clf", *ns, kubeconfig=kc).stdout
    rows = [line.split() for line in history.splitlines()[1:]]
    assert [r[:3] for r in rows] == [["1", v1, "-"], ["2", v2, "stable"]]
    entries = json.loads(plugin("history", "clf", *ns, "-o", "json", kubeconfig=kc).stdout)
    assert [(e["revision"], e["hash"], e["roles"]) for e in entries] == [
        (1, v1, []),
        (2, v2, ["stable"]),
    ]

    # undo: back to the revision before stable, as a new rollout
    undone = plugin("undo", "clf", *ns, kubeconfig=kc)
    assert f"spec set back to revision 1 ({v1})" in undone.stdout
    st = p.wait_status(cluster, namespace, "clf", "undo rolls v1 out", canaryRevision=v1)
    assert st["stableRevision"] == v2
    again = plugin("undo", "clf", "--to-revision", "1", *ns, kubeconfig=kc, code=1)
    assert "already at revision 1" in again.stderr
    missing = plugin("undo", "clf", "--to-revision", "9", *ns, kubeconfig=kc, code=1)
    assert "has no revision 9" in missing.stderr

    # abort, then retry
    p.wait_status(cluster, namespace, "clf", "undo canary paused", canaryWeight=30, phase="Paused")
    assert "abort accepted" in plugin("abort", "clf", *ns, kubeconfig=kc).stdout
    st = p.status(cluster, namespace, "clf")
    assert st["phase"] == "Aborted"
    assert st["traffic"] == [{"revision": v2, "weight": 100}]
    aborted = plugin("status", "clf", "--watch", "--timeout", "5", *ns, kubeconfig=kc, code=1)
    assert "aborted" in aborted.stderr
    assert "retry accepted" in plugin("retry", "clf", *ns, kubeconfig=kc).stdout
    plugin("retry", "clf", *ns, kubeconfig=kc, code=1)


def test_errors_and_namespace_from_context(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    kc = cluster.kubeconfig
    gone = plugin("status", "nope", "-n", namespace, kubeconfig=kc, code=1)
    assert gone.stderr == f'error: inferencepipeline "nope" not found in namespace "{namespace}"\n'
    assert gone.stdout == ""
    plugin("promote", "nope", "-n", namespace, kubeconfig=kc, code=1)

    # the namespace defaults to the kubeconfig context's
    config = yaml.safe_load(kc.read_text())
    for ctx in config["contexts"]:
        ctx["context"]["namespace"] = namespace
    scoped = tmp_path / "scoped.kubeconfig"
    scoped.write_text(yaml.safe_dump(config))
    p.apply(cluster, p.classifier("clf", namespace))
    assert plugin("list", kubeconfig=scoped).stdout.splitlines()[1].startswith("clf ")
    other = plugin("status", "clf", "-n", "default", kubeconfig=scoped, code=1)
    assert 'not found in namespace "default"' in other.stderr

    # no cluster there: one clear line naming the server
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    unreachable = tmp_path / "unreachable.kubeconfig"
    unreachable.write_text(yaml.safe_dump(config))
    down = plugin("list", kubeconfig=unreachable, code=1)
    assert down.stderr.startswith(
        "error: cannot reach the Kubernetes API server at https://127.0.0.1:1"
    )
    assert len(down.stderr.splitlines()) == 1 and "Traceback" not in down.stderr


def test_usage_errors_exit_2() -> None:
    assert "usage:" in plugin(code=2).stderr
    plugin("promote", code=2)
    plugin("status", "clf", "--timeout", "soon", code=2)
    plugin("render", "-", "-o", "xml", code=2)
    plugin("frobnicate", "clf", code=2)


def test_render_needs_no_cluster(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(p.classifier("clf", "demo")))
    out = plugin("render", str(path), "--kubeconfig", str(tmp_path / "none")).stdout
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["InferenceService", "InferenceService", "InferenceGraph"]
    assert {d["metadata"]["namespace"] for d in docs} == {"demo"}
    revision = docs[0]["metadata"]["labels"]["pipelines.inference.dev/revision"]
    assert docs[2]["metadata"]["labels"]["pipelines.inference.dev/pipeline"] == "clf"
    assert f"clf-tokenize-{revision}" in json.dumps(docs[2]["spec"])  # the one revision serves
    as_json = plugin("render", "-", "-o", "json", stdin=path.read_text()).stdout
    assert '"kind": "List"' in as_json
    broken = plugin("render", str(tmp_path / "missing.yaml"), code=1)
    assert broken.stderr.startswith("error: cannot read ")
