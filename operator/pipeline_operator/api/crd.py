"""Generate the InferencePipeline CRD from the pydantic models.

``python -m pipeline_operator.api.crd`` rewrites the committed CRD files, and those of the
command admission policy installed with it (:mod:`~pipeline_operator.api.admission`); a test
fails when they are stale. Pydantic's JSON schema is turned into a structural OpenAPI v3
schema: refs inlined, ``Optional`` unwrapped, titles dropped, free-form objects marked
``x-kubernetes-preserve-unknown-fields``.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from pipeline_operator.api import admission
from pipeline_operator.api import v1alpha1 as api

REPO_ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = REPO_ROOT / "manifests" / "crds" / f"{api.PLURAL}.{api.GROUP}.yaml"
CHART_CRD_FILE = REPO_ROOT / "charts" / "inference-pipelines" / "templates" / "crd.yaml"
POLICY_FILE = REPO_ROOT / "manifests" / "crds" / f"{api.PLURAL}.{api.GROUP}.commands.yaml"
CHART_POLICY_FILE = REPO_ROOT / "charts" / "inference-pipelines" / "templates" / "commands.yaml"

_KEEP = {
    "type",
    "description",
    "default",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "format",
    "x-kubernetes-validations",
}


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Convert one pydantic JSON schema node into a structural OpenAPI v3 schema node."""
    if "$ref" in schema:
        resolved = copy.deepcopy(defs[schema["$ref"].rsplit("/", 1)[-1]])
        resolved.update({k: v for k, v in schema.items() if k != "$ref"})
        return structural(resolved, defs)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"unsupported union in schema: {schema}")
        merged = {**{k: v for k, v in schema.items() if k != "anyOf"}, **options[0]}
        if merged.get("default", 0) is None:
            del merged["default"]
        return structural(merged, defs)
    if "const" in schema:
        schema = {**schema, "enum": [schema.pop("const")]}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _KEEP:
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value, defs)
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and "properties" not in out:
        extra = out.get("additionalProperties")
        if not extra or extra == {} or extra is True:
            out.pop("additionalProperties", None)
            out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "object" and "properties" in out:
        out.pop("additionalProperties", None)
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def _status_schema() -> dict[str, Any]:
    raw = api.InferencePipelineStatus.model_json_schema(by_alias=True, mode="serialization")
    schema = structural(raw, raw.get("$defs", {}))
    schema.pop("required", None)
    return schema


# `kubectl get ipl`; the priority 1 columns only with `-o wide`.
PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Stable", "type": "string", "jsonPath": ".status.stableRevision"},
    {"name": "Canary", "type": "string", "jsonPath": ".status.canaryRevision"},
    {"name": "Weight", "type": "string", "jsonPath": ".status.weight"},
    {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {"name": "Step", "type": "string", "jsonPath": ".status.step", "priority": 1},
    {"name": "URL", "type": "string", "jsonPath": ".status.url", "priority": 1},
    {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
]


def crd() -> dict[str, Any]:
    """The CustomResourceDefinition object."""
    spec = openapi_schema(api.InferencePipelineSpec)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{api.PLURAL}.{api.GROUP}"},
        "spec": {
            "group": api.GROUP,
            "names": {
                "kind": api.KIND,
                "listKind": f"{api.KIND}List",
                "plural": api.PLURAL,
                "singular": api.SINGULAR,
                "shortNames": api.SHORT_NAMES,
                # Not in `all`: `kubectl delete all --all` must not take the pipelines, and
                # with them (garbage collection) every InferenceService they own.
                "categories": ["kserve-pipelines"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": api.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A multi-stage inference pipeline served by KServe and "
                            "rolled out as a whole (canary or blue-green).",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec,
                                "status": _status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = (
    "# Generated by `python -m pipeline_operator.api.crd` from the pydantic models. DO NOT EDIT.\n"
)


def render_plain() -> str:
    return HEADER + yaml.safe_dump(crd(), sort_keys=False, width=100)


def render_chart() -> str:
    """The chart's template: the same CRD behind crds.enabled, kept on uninstall by default."""
    body = crd()
    # Descriptions mention {{revision}}: escape it from Helm's template engine.
    text = yaml.safe_dump(body, sort_keys=False, width=100).replace("{{", '{{ "{{" }}')
    metadata_line = f"metadata:\n  name: {body['metadata']['name']}\n"
    templated = metadata_line + (
        '  labels:\n    {{- include "inference-pipelines.labels" . | nindent 4 }}\n'
        "  {{- if .Values.crds.keep }}\n"
        "  annotations:\n    helm.sh/resource-policy: keep\n"
        "  {{- end }}\n"
    )
    return (
        HEADER
        + "{{- if .Values.crds.enabled }}\n"
        + text.replace(metadata_line, templated)
        + "{{- end }}\n"
    )


def render_policy_plain() -> str:
    """The command admission policy and its binding, installed with the CRD."""
    docs = (admission.policy(), admission.binding())
    return HEADER + "---\n".join(yaml.safe_dump(d, sort_keys=False, width=100) for d in docs)


def render_policy_chart() -> str:
    """The chart's template of the command admission policy: with the CRD (crds.enabled; one
    per cluster, like the CRD), unless commandPolicy.enabled turns it off on its own."""
    labels = '  labels:\n    {{- include "inference-pipelines.labels" . | nindent 4 }}\n'
    docs = []
    for body in (admission.policy(), admission.binding()):
        text = yaml.safe_dump(body, sort_keys=False, width=100)
        metadata_line = f"metadata:\n  name: {body['metadata']['name']}\n"
        docs.append(text.replace(metadata_line, metadata_line + labels))
    condition = "{{- if and .Values.crds.enabled .Values.commandPolicy.enabled }}\n"
    return HEADER + condition + "---\n".join(docs) + "{{- end }}\n"


def generated() -> tuple[tuple[Path, str], ...]:
    """Every generated file and its current text."""
    return (
        (CRD_FILE, render_plain()),
        (CHART_CRD_FILE, render_chart()),
        (POLICY_FILE, render_policy_plain()),
        (CHART_POLICY_FILE, render_policy_chart()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args()
    stale = []
    for path, text in generated():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        raise SystemExit(
            f"stale generated CRD: {', '.join(stale)}; run python -m pipeline_operator.api.crd"
        )


if __name__ == "__main__":
    main()
