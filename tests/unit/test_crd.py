"""The committed CRD is generated from the pydantic models and must be current."""

from __future__ import annotations

import yaml

from pipeline_operator.api import crd, reference
from pipeline_operator.api import v1alpha1 as api
from pipeline_operator.api.v1alpha1 import InferencePipelineSpec
from pipeline_operator.api.validation import validate
from tests.unit.admission import MINIMAL, admit


def test_committed_crd_files_are_up_to_date() -> None:
    for path, text in crd.generated():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: run python -m pipeline_operator.api.crd"
        )


def test_crd_shape() -> None:
    body = crd.crd()
    version = body["spec"]["versions"][0]
    assert body["spec"]["names"]["shortNames"] == api.SHORT_NAMES
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c.get("priority", 0) for c in version["additionalPrinterColumns"]}
    assert list(columns) == [
        *("Phase", "Stable", "Canary", "Weight", "Ready", "Age"),
        *("Step", "URL", "Message"),  # -o wide
    ]
    assert [c for c, priority in columns.items() if priority] == ["Step", "URL", "Message"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    stage = spec["properties"]["stages"]["items"]
    assert stage["properties"]["name"]["pattern"] == api.DNS_LABEL
    assert stage["properties"]["scaling"]["properties"]["metric"]["enum"] == [
        "concurrency",
        "rps",
        "cpu",
        "memory",
    ]
    rules = [v["rule"] for v in spec["x-kubernetes-validations"]]
    assert any("exists_one" in r for r in rules)
    canary = spec["properties"]["rollout"]["properties"]["canary"]
    assert "isSorted()" in canary["x-kubernetes-validations"][0]["rule"]


def test_schema_is_structural() -> None:
    """No $ref, anyOf or titles survive; every node has a type or preserves unknown fields."""

    def walk(node: dict, path: str) -> None:
        assert not {"$ref", "anyOf", "allOf", "oneOf", "title"} & node.keys(), path
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}{{}}")

    walk(crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "")


def test_api_reference_is_up_to_date() -> None:
    assert reference.REFERENCE_FILE.read_text(encoding="utf-8") == reference.render(), (
        "docs/api.md is stale: run python -m pipeline_operator.api.reference"
    )


def test_the_reference_experiments_snippet_is_admitted() -> None:
    snippet = reference.EXPERIMENTS.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = {**MINIMAL, **yaml.safe_load(snippet)}
    assert admit(spec) == []
    model = InferencePipelineSpec.model_validate(spec)
    assert validate(model) == []
    steps = model.rollout.canary.steps if model.rollout.canary else []
    assert [s.set_mirror.percent for s in steps if s.set_mirror] == [20, 0]
