"""Pure layer of render: pipeline files -> the KServe objects of a first deploy."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from pipeline_operator.cli import render
from pipeline_operator.cli.errors import CliError
from tests import pipelines as p
from tests.cli import samples as s


def text(*docs: dict) -> str:
    return "---\n".join(yaml.safe_dump(d) for d in docs)


def test_first_deploy_objects() -> None:
    docs = render.load_documents(text(p.classifier("clf", "demo")), "f.yaml")
    objects = render.render_objects(docs, "f.yaml", None)
    assert [o["kind"] for o in objects] == [
        "InferenceService",
        "InferenceService",
        "InferenceGraph",
    ]
    assert {o["metadata"]["labels"]["pipelines.inference.dev/pipeline"] for o in objects} == {"clf"}
    services = [o["metadata"]["name"] for o in objects[:2]]
    assert services == [f"clf-tokenize-{s.V1}", f"clf-classify-{s.V1}"]
    owner = objects[0]["metadata"]["ownerReferences"][0]
    assert owner["uid"] == render.PLACEHOLDER_UID and owner["name"] == "clf"
    assert objects[2]["metadata"]["name"] == "clf"


def test_namespace_from_the_file_else_the_flag_else_default() -> None:
    obj = p.classifier("clf", "demo")
    assert render.render_objects([obj], "f", "flag")[0]["metadata"]["namespace"] == "demo"
    del obj["metadata"]["namespace"]
    assert render.render_objects([obj], "f", "flag")[0]["metadata"]["namespace"] == "flag"
    assert render.render_objects([obj], "f", None)[0]["metadata"]["namespace"] == "default"


def test_several_pipelines_and_other_documents() -> None:
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    docs = render.load_documents(
        text(p.classifier("a", "ns"), config_map, p.classifier("b", "ns")), "f"
    )
    assert [d["metadata"]["name"] for d in docs] == ["a", "b"]
    listed = {"apiVersion": "v1", "kind": "List", "items": [p.classifier("c", "ns")]}
    assert render.load_documents(json.dumps(listed), "f")[0]["metadata"]["name"] == "c"


def test_the_render_is_deterministic() -> None:
    docs = [p.classifier("clf", "demo")]
    first = render.documents(render.render_objects(docs, "f", None), "yaml")
    assert first == render.documents(render.render_objects(docs, "f", None), "yaml")
    assert first.count("\n---\n") == 2


def test_json_output_is_a_list() -> None:
    objects = render.render_objects([p.classifier("clf", "demo")], "f", None)
    out = json.loads(render.documents(objects, "json"))
    assert out["kind"] == "List" and len(out["items"]) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a: [1", "f.yaml: not valid YAML"),
        ("apiVersion: v1\nkind: ConfigMap\n", "no InferencePipeline"),
        ("", "no InferencePipeline"),
    ],
)
def test_unreadable_files(content: str, message: str) -> None:
    with pytest.raises(CliError, match=message):
        render.load_documents(content, "f.yaml")


def test_wrong_api_version() -> None:
    obj = p.classifier("clf", "demo")
    obj["apiVersion"] = "pipelines.inference.dev/v9"
    with pytest.raises(CliError, match="apiVersion 'pipelines.inference.dev/v9' is not"):
        render.load_documents(text(obj), "f")


def test_invalid_specs_name_the_field() -> None:
    obj = p.classifier("clf", "demo")
    obj["spec"]["stages"][0]["name"] = "Bad_Name"
    with pytest.raises(CliError, match=r"^f: InferencePipeline clf: spec.stages\[0\].name: "):
        render.render_objects([obj], "f", None)
    obj = p.classifier("clf", "demo")
    obj["spec"]["stages"][1]["nodePool"] = "tpu"
    with pytest.raises(CliError, match="tpu"):
        render.render_objects([obj], "f", None)
    del obj["metadata"]["name"]
    with pytest.raises(CliError, match="without metadata.name"):
        render.render_objects([obj], "f", None)


def test_a_success_condition_that_does_not_compile_is_refused_naming_the_field() -> None:
    obj = p.classifier("clf", "demo")
    metric = {"name": "errors", "query": "q", "successCondition": "result >>= 1"}
    steps = [{"setWeight": 10}, {"pause": {}}, {"analysis": {"metrics": [metric]}}]
    obj["spec"]["rollout"] = {"canary": {"steps": steps}}
    path = "spec.rollout.canary.steps[2].analysis.metrics[0].successCondition"
    with pytest.raises(CliError, match=re.escape(f"{path}: Value error, 'result >>= 1' is not")):
        render.render_objects([obj], "f", None)


def test_lint_warnings_name_the_pipeline_and_the_field() -> None:
    obj = p.classifier("clf", "demo")
    obj["spec"]["stages"][0]["scaling"] = {"minReplicas": 1, "maxReplicas": 3, "metric": "rps"}
    [warning] = render.lint_warnings([obj], "f.yaml")
    assert warning.startswith("f.yaml: InferencePipeline clf: warning: spec.stages[0] (tokenize)")
    assert "rps needs Knative" in warning
    assert render.lint_warnings([p.classifier("clf", "demo")], "f.yaml") == []
