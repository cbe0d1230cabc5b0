"""The pipeline's Gateway API HTTPRoute (``spec.rollout.trafficRouting.gatewayAPI``): each
revision served by an InferenceGraph of its own, the route splitting between them, pinning
cohorts, keeping users sticky and mirroring (pure).

Rules, in the order the Gateway API's precedence takes them (a rule with more header matches
first; among equals, the first in the list): a rule per cohort; with stickiness, the users
whose id falls in the canary's share to the canary and the other users to the stable; last,
requests that match nothing else, split by weight. A mirror copies the share of the requests
the stable revision answers to the canary: with the Gateway API's RequestMirror filter on
those rules, or (``mirrorWith: TraefikService``) through a Traefik TraefikService of kind
mirroring that takes the stable revision's place among them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline_operator.api.v1alpha1 import (
    GROUP,
    Cohort,
    HeaderMatch,
    InferencePipelineStatus,
    Stickiness,
    TrafficRouting,
)
from pipeline_operator.core import naming
from pipeline_operator.core.planner.graph import TRAFFIC_ANNOTATION, format_traffic
from pipeline_operator.core.planner.metadata import build_metadata
from pipeline_operator.core.planner.options import Owner, PlanOptions
from pipeline_operator.core.revisions import canary_active

ROUTE_API_VERSION = "gateway.networking.k8s.io/v1"
ROUTE_KIND = "HTTPRoute"
MIRROR_ANNOTATION = f"{GROUP}/mirror"
MIRRORING_API_VERSION = "traefik.io/v1alpha1"
MIRRORING_KIND = "TraefikService"
GRAPH_PORT = 80  # the port of the Service KServe puts before an InferenceGraph's router
BUCKETS = 256  # sticky users: the last two hex digits of their id
HEX = "0123456789abcdef"


def build_http_route(
    owner: Owner,
    routing: TrafficRouting,
    weights: Mapping[str, int],
    status: InferencePipelineStatus,
    options: PlanOptions,
) -> dict[str, Any]:
    """The route of ``weights`` (revision -> share); while a canary is in progress, its
    cohorts and sticky users pinned to it, and ``status.mirror_percent`` of the stable's
    requests copied to it."""
    gateway = routing.gateway_api
    if gateway is None:
        raise ValueError("build_http_route needs trafficRouting.gatewayAPI")
    stable = status.stable_revision or next(iter(weights))
    canary = status.canary_revision if canary_active(status) else None
    mirror = status.mirror_percent if canary else 0
    metadata = build_metadata(
        owner, naming.graph_name(owner.name), naming.labels(owner.name), options
    )
    metadata["annotations"][TRAFFIC_ANNOTATION] = format_traffic(weights)
    if mirror and canary:
        metadata["annotations"][MIRROR_ANNOTATION] = f"{canary}={mirror}"
    target = canary or stable
    by_traefik = traefik_mirror(routing, status) is not None
    mirroring = naming.mirror_name(owner.name)

    def backend(revision: str, weight: int | None = None) -> dict[str, Any]:
        ref: dict[str, Any] = {
            "name": naming.revision_graph_name(owner.name, revision),
            "port": GRAPH_PORT,
        }
        return ref if weight is None else {**ref, "weight": weight}

    def served(revision: str, weight: int | None = None) -> dict[str, Any]:
        """``backend``, but the stable revision's requests pass the mirroring service."""
        if not (by_traefik and revision == stable):
            return backend(revision, weight)
        ref = {"group": "traefik.io", "kind": MIRRORING_KIND, "name": mirroring}
        return ref if weight is None else {**ref, "weight": weight}

    filters = []
    if mirror and canary and not by_traefik:
        # Without ``percent``, a filter copies every request: what implementations without
        # the percentage mirror (HTTPRouteRequestPercentageMirror) support.
        mirror_to = {"backendRef": backend(canary), **({"percent": mirror} if mirror < 100 else {})}
        filters = [{"type": "RequestMirror", "requestMirror": mirror_to}]
    rules = [
        {"matches": [cohort_match(c)], "backendRefs": [backend(_revision(c, stable, target))]}
        for c in routing.cohorts
    ]
    if routing.stickiness is not None:
        share = weights.get(canary or "", 0)
        if canary and share:
            canary_match = sticky_match(routing.stickiness, share)
            rules.append({"matches": [canary_match], "backendRefs": [backend(canary)]})
        stable_rule: dict[str, Any] = {
            "matches": [sticky_match(routing.stickiness, 0)],
            "backendRefs": [served(stable)],
        }
        rules.append({**stable_rule, **({"filters": filters} if filters else {})})
    split = {"backendRefs": [served(r, w) for r, w in weights.items()]}
    rules.append({**split, **({"filters": filters} if filters else {})})
    spec: dict[str, Any] = {
        "parentRefs": [
            {
                "group": "gateway.networking.k8s.io",
                "kind": "Gateway",
                "name": ref.name,
                **({"namespace": ref.namespace} if ref.namespace else {}),
                **({"sectionName": ref.section_name} if ref.section_name else {}),
            }
            for ref in gateway.parent_refs
        ],
        "rules": rules,
    }
    if gateway.hostnames:
        spec["hostnames"] = list(gateway.hostnames)
    return {"apiVersion": ROUTE_API_VERSION, "kind": ROUTE_KIND, "metadata": metadata, "spec": spec}


def build_mirroring(
    owner: Owner, routing: TrafficRouting, status: InferencePipelineStatus, options: PlanOptions
) -> dict[str, Any] | None:
    """With ``mirrorWith: TraefikService``, while a canary is mirrored to: the TraefikService
    the route sends the stable revision's requests to, which serves them from the stable
    revision's graph and copies ``status.mirror_percent`` of them to the canary's (Traefik
    discards the copies' answers and never waits on them)."""
    mirrored = traefik_mirror(routing, status)
    if mirrored is None:
        return None
    stable, canary, mirror = mirrored
    name = naming.mirror_name(owner.name)
    metadata = build_metadata(owner, name, naming.labels(owner.name), options)
    target = {"name": naming.revision_graph_name(owner.name, canary), "port": GRAPH_PORT}
    spec = {
        "mirroring": {
            "name": naming.revision_graph_name(owner.name, stable),
            "port": GRAPH_PORT,
            "mirrors": [{**target, "percent": mirror}],
        }
    }
    return {
        "apiVersion": MIRRORING_API_VERSION,
        "kind": MIRRORING_KIND,
        "metadata": metadata,
        "spec": spec,
    }


def traefik_mirror(
    routing: TrafficRouting, status: InferencePipelineStatus
) -> tuple[str, str, int] | None:
    """(stable, canary, share) while a canary is mirrored to through a TraefikService."""
    gateway = routing.gateway_api
    if gateway is None or gateway.mirror_with != "TraefikService":
        return None
    stable, canary = status.stable_revision, status.canary_revision
    if stable is None or canary is None or not canary_active(status) or not status.mirror_percent:
        return None
    return stable, canary, status.mirror_percent


def _revision(cohort: Cohort, stable: str, canary: str) -> str:
    return canary if cohort.revision == "Canary" else stable


def cohort_match(cohort: Cohort) -> dict[str, Any]:
    if cohort.header is not None:
        return {"headers": [header_match(cohort.header)]}
    assert cohort.cookie is not None  # the model holds exactly one of them
    value = re.escape(cohort.cookie.value)
    return {"headers": [_cookie(cohort.cookie.name, value)]}


def header_match(header: HeaderMatch) -> dict[str, Any]:
    return {"type": header.type, "name": header.name, "value": header.value}


def sticky_match(stickiness: Stickiness, share: int) -> dict[str, Any]:
    """The users of the canary's ``share`` percent (0: every user that names itself): ids
    whose last two hex digits, as a number, are below ``share`` percent of 256."""
    tail = bucket_regex(round(BUCKETS * share / 100)) if share else ""
    if stickiness.header is not None:
        pattern = f"^.*{tail}$" if share else "^.+$"
        match = {"type": "RegularExpression", "name": stickiness.header, "value": pattern}
        return {"headers": [match]}
    assert stickiness.cookie is not None
    value = f"[^;]*{tail}" if share else "[^;]+"
    return {"headers": [_cookie(stickiness.cookie, value)]}


def bucket_regex(count: int) -> str:
    """A regex of the two-hex-digit endings 00 .. (``count`` - 1), either case."""
    if count >= BUCKETS:
        return "[0-9a-fA-F]{2}"
    whole, part = divmod(count, 16)
    options = []
    if whole:
        options.append(f"{_hex_class(whole)}[0-9a-fA-F]")
    if part:
        options.append(f"{_hex_class_of(HEX[whole])}{_hex_class(part)}")
    return f"({'|'.join(options)})"


def _hex_class(count: int) -> str:
    """A character class of the first ``count`` hex digits, either case."""
    digits = HEX[:count]
    return "[" + "".join(sorted({*digits, *digits.upper()})) + "]"


def _hex_class_of(digit: str) -> str:
    return f"[{digit}{digit.upper()}]" if digit.isalpha() else digit


def _cookie(name: str, value_regex: str) -> dict[str, Any]:
    """A match on the Cookie header holding ``name`` with a value matching the regex."""
    return {
        "type": "RegularExpression",
        "name": "Cookie",
        "value": f"^(.*; ?)?{re.escape(name)}={value_regex}(;.*)?$",
    }
