"""The CRD's defaults and CEL rules applied offline, as the apiserver applies them on create.

:func:`admit` fills in the schema defaults of the generated CRD, then evaluates every
``x-kubernetes-validations`` rule at its node with celpy, ``self`` bound to that node. A rule
that is false or errors (``no such key`` on an absent optional field) is a failure, as on the
apiserver. :func:`stripped` turns a pipeline spec into variants with one optional block removed
or emptied each, which the CRD and the model must both accept.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel

from pipeline_operator.api import crd

EXAMPLES = sorted((Path(__file__).parents[2] / "manifests" / "examples").glob("*/pipeline.yaml"))
MINIMAL = {"stages": [{"name": "model", "predictor": {"container": {"image": "example/model:1"}}}]}

# Blocks that are alternatives, exactly one of which is set: without it, the object is no
# longer the same pipeline less an optional block, and the CRD rightly refuses it.
_ALTERNATIVES = [
    (r"\.predictor$", {"model", "container"}),
    (r"\.canary\.steps\[\d+\]$", {"pause", "analysis", "setMirror"}),
    # A metric's provider, a cohort's match: exactly one of each.
    (r"\.metrics\[\d+\]$", {"web", "job"}),
    (r"\.cohorts\[\d+\]$", {"header", "cookie"}),
    # Cohorts and stickiness route through the Gateway API alone.
    (r"\.trafficRouting$", {"gatewayAPI"}),
]
# Objects of optional fields that set exactly one of them: never empty.
_ONE_OF = {"stickiness"}


@cache
def spec_schema() -> dict[str, Any]:
    version = crd.crd()["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def _is_sorted(items: celtypes.ListType) -> celtypes.BoolType:
    """Kubernetes' CEL list extension ``isSorted()``."""
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(items)))


@cache
def _program(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule), functions={"isSorted": _is_sorted})


def _default(schema: dict[str, Any], value: Any) -> Any:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = _default(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        value = [_default(schema["items"], item) for item in value]
    return value


def _failures(schema: dict[str, Any], value: Any, path: str) -> Iterator[str]:
    for rule in schema.get("x-kubernetes-validations", []):
        try:
            verdict = _program(rule["rule"]).evaluate({"self": json_to_cel(value)})
        except celpy.CELEvalError as err:
            yield f"{path}: {err.args[0]} evaluating rule: {rule['rule']}"
            continue
        if not (isinstance(verdict, celtypes.BoolType) and verdict):
            yield f"{path}: {rule.get('message') or rule['messageExpression']}"
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                yield from _failures(sub, value[name], f"{path}.{name}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from _failures(schema["items"], item, f"{path}[{i}]")


def defaulted(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with the schema defaults filled in, as the apiserver stores it."""
    out: dict[str, Any] = _default(spec_schema(), copy.deepcopy(spec))
    return out


def admit(spec: dict[str, Any]) -> list[str]:
    """The CEL rule failures of ``spec`` after defaulting; empty when the rules admit it."""
    return list(_failures(spec_schema(), defaulted(spec), "spec"))


def _alternative(path: str, name: str) -> bool:
    return any(re.search(where, path) and name in names for where, names in _ALTERNATIVES)


def _blocks(schema: dict[str, Any], value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(label, value) for ``value`` with one optional object or array left out or emptied."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            for label, variant in _blocks(schema["items"], item, f"{path}[{i}]"):
                yield label, [*value[:i], variant, *value[i + 1 :]]
        return
    if not isinstance(value, dict):
        return
    for name, sub in schema.get("properties", {}).items():
        if name not in value:
            continue
        where = f"{path}.{name}"
        block = sub.get("type") in ("object", "array") and name not in schema.get("required", [])
        if block and not _alternative(path, name):
            yield f"{where} removed", {k: v for k, v in value.items() if k != name}
        emptied = not sub.get("required") and name not in _ONE_OF
        if block and sub.get("type") == "object" and emptied and value[name]:
            yield f"{where} empty", {**value, name: {}}
        for label, variant in _blocks(sub, value[name], where):
            yield label, {**value, name: variant}


def stripped(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``spec`` with each optional block removed or emptied in turn.

    Without ``nodePools`` the stages' references to them go too; without the Gateway API
    routing, the ``setMirror`` steps (a mirror needs it).
    """
    for label, variant in _blocks(spec_schema(), spec, "spec"):
        if "nodePools" not in variant and "nodePools" in spec:
            stages = [{k: v for k, v in s.items() if k != "nodePool"} for s in variant["stages"]]
            variant = {**variant, "stages": stages}
        if _gateway(spec) and not _gateway(variant) and "canary" in variant.get("rollout", {}):
            canary = variant["rollout"]["canary"]
            steps = [s for s in canary.get("steps", []) if "setMirror" not in s]
            rollout = {**variant["rollout"], "canary": {**canary, "steps": steps}}
            variant = {**variant, "rollout": rollout}
        yield label, variant


def _gateway(spec: dict[str, Any]) -> bool:
    return "gatewayAPI" in spec.get("rollout", {}).get("trafficRouting", {})
