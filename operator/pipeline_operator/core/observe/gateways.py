"""Whether the Gateways a pipeline's HTTPRoute attaches to can do what its steps ask (pure).

A GatewayClass lists the Gateway API features its implementation supports in
``status.supportedFeatures`` (Gateway API v1.2 and later). An implementation that lacks the
``RequestMirror`` filter may fail every request of a rule that carries one (Traefik answers
500), so a pipeline whose ``setMirror`` steps a Gateway's class does not list is refused,
naming the step, before any route carries the filter. A class that lists no features, or a
Gateway not read, is not judged: the route's own status tells then. A pipeline that mirrors
through a TraefikService (``mirrorWith``) asks no filter of the class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, ParentRef

MIRROR = "HTTPRouteRequestMirror"
PERCENTAGE_MIRROR = "HTTPRouteRequestPercentageMirror"

GatewayKey = tuple[str, str]
"""(namespace, name) of a Gateway."""


@dataclass(frozen=True)
class GatewaySupport:
    """A Gateway's class and the features it lists (None: unknown, ``unknown`` says why;
    ``refused`` when the API refused the operator the reads)."""

    gateway: GatewayKey
    class_name: str | None = None
    features: frozenset[str] | None = None
    unknown: str | None = None
    refused: bool = False


def gateway_keys(spec: InferencePipelineSpec, namespace: str) -> list[GatewayKey]:
    """The Gateways whose support the spec's steps depend on: its parents, when a step
    mirrors (none otherwise)."""
    gateway = spec.rollout.traffic_routing.gateway_api
    if gateway is None or not mirror_needs(spec):
        return []
    return list(dict.fromkeys(_key(ref, namespace) for ref in gateway.parent_refs))


def _key(ref: ParentRef, namespace: str) -> GatewayKey:
    return (ref.namespace or namespace, ref.name)


def mirror_steps(spec: InferencePipelineSpec) -> dict[int, int]:
    """Per canary step that mirrors (a ``setMirror`` above 0), its share."""
    steps = spec.rollout.canary.steps if spec.rollout.canary is not None else []
    return {
        index: step.set_mirror.percent
        for index, step in enumerate(steps)
        if step.set_mirror is not None and step.set_mirror.percent > 0
    }


def mirror_needs(spec: InferencePipelineSpec) -> dict[int, str]:
    """Per canary step that mirrors with the RequestMirror filter, the feature it needs: a
    share below 100% the percentage mirror, all requests the plain one (a ``setMirror`` of 0
    needs none)."""
    gateway = spec.rollout.traffic_routing.gateway_api
    if gateway is not None and gateway.mirror_with != "RequestMirror":
        return {}
    return {
        index: MIRROR if percent == 100 else PERCENTAGE_MIRROR
        for index, percent in mirror_steps(spec).items()
    }


def unsupported_mirrors(
    spec: InferencePipelineSpec, supports: Iterable[GatewaySupport]
) -> list[str]:
    """Why each mirroring step cannot run on the Gateways of ``supports`` (empty: it can)."""
    needs = mirror_needs(spec)
    problems = []
    for support in supports:
        if support.features is None:
            continue
        for index, feature in needs.items():
            if feature not in support.features:
                namespace, name = support.gateway
                problems.append(
                    f"spec.rollout.canary.steps[{index}].setMirror: the GatewayClass "
                    f"{support.class_name} of Gateway {namespace}/{name} does not list "
                    f"{feature} in its status.supportedFeatures: a route mirroring through "
                    "it could fail the requests it copies; leave the step out or attach to a "
                    "Gateway whose implementation mirrors"
                )
    return problems


def read_support(
    key: GatewayKey,
    gateway: Mapping[str, Any] | None,
    gateway_class: Mapping[str, Any] | None,
) -> GatewaySupport:
    """A Gateway's support from the Gateway and its class as read (None: not found)."""
    if gateway is None:
        return GatewaySupport(key, unknown="the Gateway does not exist")
    class_name = str((gateway.get("spec") or {}).get("gatewayClassName") or "")
    if gateway_class is None:
        return GatewaySupport(key, class_name, unknown=f"GatewayClass {class_name} not found")
    listed = (gateway_class.get("status") or {}).get("supportedFeatures")
    if not listed:
        return GatewaySupport(key, class_name, unknown="the class lists no supported features")
    # Gateway API v1.2 lists {name: ...} objects; earlier experimental versions, strings.
    names = frozenset(str(f.get("name") if isinstance(f, Mapping) else f) for f in listed)
    return GatewaySupport(key, class_name, names)
