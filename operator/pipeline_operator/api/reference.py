"""Generate the API reference (docs/api.md) from the pydantic models.

``python -m pipeline_operator.api.reference`` rewrites it; a test fails when it is stale.
"""

from __future__ import annotations

import argparse
import inspect
import json
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pipeline_operator.api import v1alpha1 as api

REFERENCE_FILE = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        return f"[]{_type_name(args[0])}"
    if origin is dict:
        return f"map[{_type_name(args[0])}]{_type_name(args[1])}"
    if inspect.isclass(annotation) and issubclass(annotation, Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return {str: "string", int: "integer", bool: "boolean", float: "number"}.get(
        annotation, "object"
    )


def _default(info: FieldInfo) -> str:
    if info.default is PydanticUndefined or info.default is None:
        return ""
    value = info.default.value if isinstance(info.default, Enum) else info.default
    if isinstance(value, list | dict):
        return f"`{json.dumps(value)}`"
    return f"`{value}`".replace("`False`", "`false`").replace("`True`", "`true`")


def _constraints(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        for name in ("ge", "le", "min_length", "max_length", "pattern"):
            value = getattr(meta, name, None)
            if value is not None:
                parts.append(f"{name}={value}")
    return ", ".join(parts)


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.append(model)
        for info in model.model_fields.values():
            for arg in _walk(info.annotation):
                if inspect.isclass(arg) and issubclass(arg, BaseModel):
                    visit(arg)

    visit(root)
    return seen


def _walk(annotation: Any) -> list[Any]:
    out = [annotation]
    for arg in typing.get_args(annotation):
        out += _walk(arg)
    return out


def _rules(model: type[BaseModel]) -> list[str]:
    """Messages of the model's CEL rules (attached by ``v1alpha1.cel``)."""
    extra = model.model_config.get("json_schema_extra")
    validations = extra.get("x-kubernetes-validations") if isinstance(extra, dict) else None
    if not isinstance(validations, list):
        return []
    return [
        str(rule.get("message") or rule.get("messageExpression"))
        for rule in validations
        if isinstance(rule, dict)
    ]


def _section(model: type[BaseModel]) -> str:
    doc = inspect.getdoc(model) or ""
    if doc.startswith(("Base:", "Status objects")):
        doc = ""
    rules = _rules(model)
    lines = [f"### {model.__name__}", ""]
    if doc:
        lines += [doc, ""]
    lines += ["| Field | Type | Default | Description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        alias = info.alias or name
        description = (info.description or "").replace("\n", " ")
        constraints = _constraints(info)
        if constraints:
            description = f"{description} ({constraints})".strip()
        description = description.replace("|", "\\|")
        required = " (required)" if info.is_required() else ""
        lines.append(
            f"| `{alias}`{required} | {_type_name(info.annotation)} | {_default(info)} "
            f"| {description} |"
        )
    if rules:
        lines += ["", "Validation rules (checked by the apiserver):", ""]
        lines += [f"- {rule}" for rule in rules]
    return "\n".join(lines) + "\n"


EXPERIMENTS = """## Experiments

A canary through a Gateway API HTTPRoute (`trafficRouting.gatewayAPI`) can copy live
requests to the new revision before it answers any (`setMirror`), pin a cohort to it by a
header or cookie, keep each user on one revision (`stickiness`), be judged by a Job on a
labelled set (`job` metrics, e.g. the kit's evaluation image) and wait for a webhook before
promotion (`webhooks`). `manifests/examples/05-experiments` runs them through a real
Gateway (Traefik). A mirror needs a Gateway whose class lists `HTTPRouteRequestMirror`
(`HTTPRouteRequestPercentageMirror` for a share) in `status.supportedFeatures`, or the
pipeline is refused, naming the step; on Traefik, which has no such filter, set
`gatewayAPI.mirrorWith: TraefikService` and the mirror goes through a TraefikService the
operator owns (docs/operations.md).

```yaml
rollout:
  trafficRouting:
    gatewayAPI: {parentRefs: [{name: inference-gateway, namespace: gateway}]}
    cohorts: [{name: testers, revision: Canary, header: {name: X-Cohort, value: testers}}]
    stickiness: {header: X-User-Id}
  webhooks:
    - {name: approve, type: ConfirmPromotion, url: "http://approvals.ops.svc/approve"}
  canary:
    steps:
      - setMirror: {percent: 20}         # shadow: copies, answers discarded
      - pause: {duration: 10m}
      - setMirror: {percent: 0}
      - setWeight: 10
      - analysis:
          metrics:
            - name: labelled-accuracy
              job:
                template:
                  spec:
                    containers:
                      - name: evaluate
                        image: ghcr.io/inference-pipelines/evaluation:0.1.0
                        args: ["--labelled=/data/set.jsonl", "--min-agreement=0.95"]
      - setWeight: 50
```

"""


def render() -> str:
    head = f"""# API reference: {api.KIND} {api.API_VERSION}

Generated by `python -m pipeline_operator.api.reference` from the pydantic models in
`operator/pipeline_operator/api/v1alpha1.py`, the same models the CRD schema is generated
from. Do not edit by hand.

Short names: {", ".join(f"`{n}`" for n in api.SHORT_NAMES)}. Commands are the annotation
`{api.GROUP}/command` (`promote`, `promote-full`, `abort`, `retry`, optionally `:<id>`) and
the field `spec.paused`; see [the CLI](cli.md).

## Values with a grammar

- **Quantities** (`resources.cpu`, `resources.memory`) are Kubernetes resource quantities,
  not negative: a number (`2`, `0.5`, `.5`) with an optional binary-SI suffix
  (`Ki Mi Gi Ti Pi Ei`), decimal-SI suffix (`m k M G T P E`) or exponent (`1e9`), e.g.
  `500m` or `16Gi`. `1.2.3`, `1Mi5` or `-1` are refused.
- **Switch conditions** (`graph.nodes[].steps[].condition`) are
  [GJSON](https://github.com/tidwall/gjson/blob/master/SYNTAX.md) paths, read by KServe's
  router on the node's input: a step is taken when its path matches something. To test a
  value, query an array: `predictions.#(confident==false)`, `instances.#(lang=="fr")`,
  `predictions.#(score<0.9)`; on an object, `[@this].#(confident==false)`. A key character
  other than letters, digits, `_`, `-`, `:`, spaces, `*` and `?` is escaped with `\\`, so
  `confident == false` (a key of that name) or JSONPath such as `$.a[0]` is refused rather
  than never matching.
- **Success conditions** (`analysis.metrics[].successCondition`) are
  [CEL](https://kubernetes.io/docs/reference/using-api/cel/) expressions, the language of the
  CRD's own rules, over one variable, `result`: the measured value, a double. They must be
  true or false: `result >= 0.99`, `result < 500 && result > 0`, `!(result > 0.05)`,
  `result in [0.0, 1.0]`. Numbers compare across int and double (`result == 1`). A condition
  that does not compile is refused when the pipeline is rendered or reconciled, naming the
  field; a NaN result fails every condition.

{EXPERIMENTS}## Spec
"""
    spec = "\n".join(_section(m) for m in _models(api.InferencePipelineSpec))
    status = "\n".join(
        _section(m)
        for m in _models(api.InferencePipelineStatus)
        if m not in _models(api.InferencePipelineSpec)
    )
    return f"{head}\n{spec}\n## Status\n\n{status}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not REFERENCE_FILE.exists() or REFERENCE_FILE.read_text(encoding="utf-8") != text:
            raise SystemExit(
                f"{REFERENCE_FILE} is stale: run python -m pipeline_operator.api.reference"
            )
        return
    REFERENCE_FILE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE_FILE.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
