"""plan(): the desired KServe children of one InferencePipeline (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline_operator.api.v1alpha1 import (
    InferencePipelineSpec,
    InferencePipelineStatus,
    Phase,
    Scaling,
    TrafficRouting,
    TrafficTarget,
)
from pipeline_operator.core.planner.graph import (
    ROLE_PREVIEW,
    ROLE_REVISION,
    build_inference_graph,
)
from pipeline_operator.core.planner.inference_service import build_inference_services
from pipeline_operator.core.planner.options import (
    MissingRevisionError,
    Owner,
    PlanError,
    PlanOptions,
)
from pipeline_operator.core.planner.route import build_http_route, build_mirroring
from pipeline_operator.core.revisions import active_revisions, canary_active, scale_of

# KServe's webhooks accept InferenceService and InferenceGraph names of this form only.
KSERVE_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def traffic_weights(status: InferencePipelineStatus) -> dict[str, int]:
    """Revision -> weight of the entries with weight > 0, in status order, summing to 100."""
    weights: dict[str, int] = {}
    for target in status.traffic:
        if target.weight > 0:
            weights[target.revision] = weights.get(target.revision, 0) + target.weight
    total = sum(weights.values())
    if weights and total != 100:
        raise PlanError(f"status.traffic weights sum to {total}, not 100: {weights}")
    return weights


def preview_weights(status: InferencePipelineStatus) -> dict[str, int]:
    """Blue-green: all preview traffic to the new revision while it is deployed."""
    revision = status.canary_revision
    if status.strategy != "BlueGreen" or revision is None or not canary_active(status):
        return {}
    return {revision: 100}


def evaluated_revisions(status: InferencePipelineStatus) -> list[str]:
    """A canary in progress: its stable and canary revisions (those it has)."""
    if status.strategy != "Canary" or not canary_active(status):
        return []
    return [r for r in (status.stable_revision, status.canary_revision) if r is not None]


def snapshots(
    specs: Mapping[str, InferencePipelineSpec], revisions: list[str]
) -> dict[str, InferencePipelineSpec]:
    """The spec snapshot of every revision; a missing one is an error, never skipped."""
    missing = [r for r in revisions if r not in specs]
    if missing:
        raise MissingRevisionError(missing[0])
    return {r: specs[r] for r in revisions}


def check_names(objects: list[dict[str, Any]]) -> None:
    """Refuse names KServe would reject (they must start with a letter)."""
    for obj in objects:
        name = obj["metadata"]["name"]
        if not KSERVE_NAME.match(name):
            raise PlanError(
                f"{obj['kind']} name {name!r} is not accepted by KServe "
                f"(must match {KSERVE_NAME.pattern}); rename the pipeline"
            )


def plan(
    owner: Owner,
    specs: Mapping[str, InferencePipelineSpec],
    status: InferencePipelineStatus,
    options: PlanOptions = PlanOptions(),  # noqa: B008 - frozen, never mutated
    capacity: Mapping[str, Scaling] | None = None,
    revision_graphs: bool = False,
    routing: TrafficRouting | None = None,
) -> list[dict[str, Any]]:
    """Every desired child, in apply order: InferenceServices, InferenceGraph(s), then the
    HTTPRoute (after the TraefikService it mirrors through, if any).

    InferenceServices: one per stage of each active revision (stable first), each stage
    scaled as ``capacity`` says for its name (the spec's scaling now, applied in place to
    every revision), else as its revision's snapshot. The graph: a Splitter over the
    revisions with traffic, absent while there is none. Blue-green with a preview deployed
    adds the preview graph, routed wholly to the new revision. With ``revision_graphs`` (the
    canary's analysis runs jobs against each revision), a canary in progress adds a graph of
    the stable revision's own and one of the canary's. With ``routing`` through the Gateway
    API, every revision the route sends requests to has a graph of its own and the HTTPRoute
    splits between them, in place of the Splitter graph; a mirror through Traefik adds the
    TraefikService that copies the stable revision's requests.
    """
    revisions = active_revisions(status)
    weights = traffic_weights(status)
    preview = preview_weights(status)
    active = snapshots(specs, revisions + [r for r in (*weights, *preview) if r not in revisions])
    objects: list[dict[str, Any]] = []
    for revision in revisions:
        scale = scale_of(status, revision)
        objects += build_inference_services(
            owner, active[revision], revision, options, scale, capacity or {}
        )
    route_by = routing if routing is not None and routing.gateway_api is not None else None
    if weights and route_by is None:
        objects.append(build_inference_graph(owner, weights, active, options))
    if preview:
        objects.append(build_inference_graph(owner, preview, active, options, ROLE_PREVIEW))
    own = evaluated_revisions(status) if revision_graphs else []
    if route_by is not None and weights:
        own += routed_revisions(status, weights, route_by)
    for revision in dict.fromkeys(own):
        objects.append(
            build_inference_graph(owner, {revision: 100}, active, options, ROLE_REVISION)
        )
    if route_by is not None and weights:
        mirroring = build_mirroring(owner, route_by, status, options)
        # Before the route that names it: a route whose service is not there yet fails.
        objects += [mirroring] if mirroring is not None else []
        objects.append(build_http_route(owner, route_by, weights, status, options))
    check_names(objects)
    return objects


def routed_revisions(
    status: InferencePipelineStatus, weights: Mapping[str, int], routing: TrafficRouting
) -> list[str]:
    """The revisions an HTTPRoute sends requests to: those with weight, the stable one, and
    the canary in progress when it is mirrored to or a cohort or sticky user is pinned to it."""
    out = [*weights, *([status.stable_revision] if status.stable_revision else [])]
    canary = status.canary_revision if canary_active(status) else None
    pinned = status.mirror_percent or any(c.revision == "Canary" for c in routing.cohorts)
    if canary and pinned:
        out.append(canary)
    return list(dict.fromkeys(out))


def first_deploy_status(revision: str) -> InferencePipelineStatus:
    """Rollout state of a first deploy: ``revision`` stable, serving 100%."""
    return InferencePipelineStatus(
        phase=Phase.HEALTHY,
        stable_revision=revision,
        traffic=[TrafficTarget(revision=revision, weight=100)],
    )


def plan_revision(
    owner: Owner,
    spec: InferencePipelineSpec,
    revision: str,
    options: PlanOptions = PlanOptions(),  # noqa: B008 - frozen, never mutated
) -> list[dict[str, Any]]:
    """The children of ``spec`` deployed on its own, as on a first deploy.

    Raises :class:`PlanError` when the revision cannot be turned into KServe objects at all
    (e.g. a pipeline name KServe refuses), before anything of it is stored or applied.
    """
    return plan(owner, {revision: spec}, first_deploy_status(revision), options)
