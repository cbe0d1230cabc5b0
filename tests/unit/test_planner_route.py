"""The Gateway API route of a pipeline: graphs per revision, split, cohorts, stickiness,
mirror; and the admission of what the Splitter cannot do."""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline_operator.api.v1alpha1 import (
    InferencePipelineSpec,
    InferencePipelineStatus,
    Rollout,
    TrafficRouting,
    TrafficTarget,
)
from pipeline_operator.core.planner import Owner, plan
from pipeline_operator.core.planner.route import bucket_regex
from tests.unit.admission import MINIMAL, admit

OWNER = Owner(name="clf", namespace="ml", uid="uid-1")
GATEWAY = {"parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "http"}]}
SPEC = InferencePipelineSpec.model_validate(MINIMAL)
SPECS = {"r1": SPEC, "r2": SPEC}
CANARY = InferencePipelineStatus.model_validate(
    {
        "stableRevision": "r1",
        "canaryRevision": "r2",
        "strategy": "Canary",
        "phase": "Progressing",
        "traffic": [{"revision": "r1", "weight": 70}, {"revision": "r2", "weight": 30}],
    }
)


def routing(**extra: Any) -> TrafficRouting:
    return TrafficRouting.model_validate({"gatewayAPI": GATEWAY, **extra})


def route_of(status: InferencePipelineStatus, **extra: Any) -> tuple[list[str], dict]:
    objects = plan(OWNER, SPECS, status, routing=routing(**extra))
    graphs = [o["metadata"]["name"] for o in objects if o["kind"] == "InferenceGraph"]
    (route,) = [o for o in objects if o["kind"] == "HTTPRoute"]
    return graphs, route


def backends(rule: dict) -> list[tuple[str, int | None]]:
    return [(b["name"], b.get("weight")) for b in rule["backendRefs"]]


def test_the_route_splits_between_graphs_of_each_revision_in_place_of_the_splitter() -> None:
    graphs, route = route_of(CANARY)
    assert graphs == ["clf-r1", "clf-r2"]  # no Splitter graph named clf
    assert route["metadata"]["name"] == "clf" and route["metadata"]["namespace"] == "ml"
    assert route["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "public",
            "namespace": "gateways",
            "sectionName": "http",
        }
    ]
    (split,) = route["spec"]["rules"]
    assert backends(split) == [("clf-r1", 70), ("clf-r2", 30)]
    assert all(b["port"] == 80 for b in split["backendRefs"])
    assert "hostnames" not in route["spec"] and "filters" not in split


def test_without_the_gateway_the_splitter_graph_stays_as_it_was() -> None:
    objects = plan(OWNER, SPECS, CANARY, routing=TrafficRouting())
    assert [o["metadata"]["name"] for o in objects if o["kind"] != "InferenceService"] == ["clf"]


def test_a_mirror_copies_the_stable_share_to_the_canary() -> None:
    status = CANARY.model_copy(
        update={"traffic": [TrafficTarget(revision="r1", weight=100)], "mirror_percent": 20}
    )
    graphs, route = route_of(status)
    assert graphs == ["clf-r1", "clf-r2"]  # the canary serves copies only
    (split,) = route["spec"]["rules"]
    assert backends(split) == [("clf-r1", 100)]
    assert split["filters"] == [
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "clf-r2", "port": 80}, "percent": 20},
        }
    ]
    assert route["metadata"]["annotations"]["pipelines.inference.dev/mirror"] == "r2=20"


def test_a_whole_mirror_is_written_without_a_percentage() -> None:
    status = CANARY.model_copy(
        update={"traffic": [TrafficTarget(revision="r1", weight=100)], "mirror_percent": 100}
    )
    _, route = route_of(status)
    (split,) = route["spec"]["rules"]
    assert split["filters"][0]["requestMirror"] == {"backendRef": {"name": "clf-r2", "port": 80}}


def test_cohorts_come_first_and_reach_their_revision() -> None:
    cohorts = [
        {"name": "testers", "revision": "Canary", "header": {"name": "X-Cohort", "value": "qa"}},
        {"name": "vip", "revision": "Stable", "cookie": {"name": "tier", "value": "gold.1"}},
    ]
    _, route = route_of(CANARY, cohorts=cohorts)
    testers, vip, split = route["spec"]["rules"]
    assert testers["matches"] == [
        {"headers": [{"type": "Exact", "name": "X-Cohort", "value": "qa"}]}
    ]
    assert backends(testers) == [("clf-r2", None)] and backends(vip) == [("clf-r1", None)]
    (cookie,) = vip["matches"][0]["headers"]
    assert cookie["name"] == "Cookie" and cookie["type"] == "RegularExpression"
    pattern = re.compile(cookie["value"])
    assert pattern.match("tier=gold.1") and pattern.match("a=b; tier=gold.1; c=d")
    assert not pattern.match("tier=goldx1") and not pattern.match("xtier=gold.1")
    assert backends(split) == [("clf-r1", 70), ("clf-r2", 30)]


def test_a_canary_cohort_reaches_the_stable_revision_when_no_canary_runs() -> None:
    healthy = InferencePipelineStatus.model_validate(
        {"stableRevision": "r1", "phase": "Healthy", "traffic": [{"revision": "r1", "weight": 100}]}
    )
    cohort = {"name": "qa", "revision": "Canary", "header": {"name": "X-Cohort", "value": "qa"}}
    graphs, route = route_of(healthy, cohorts=[cohort])
    assert graphs == ["clf-r1"]
    assert backends(route["spec"]["rules"][0]) == [("clf-r1", None)]


@pytest.mark.parametrize("share", [1, 10, 30, 50, 99, 100])
def test_sticky_users_in_the_canary_share_stay_as_the_share_grows(share: int) -> None:
    rng = random.Random(share)
    users = [f"{rng.getrandbits(64):016x}" for _ in range(4000)]
    on = re.compile(f"^.*{bucket_regex(round(256 * share / 100))}$")
    taken = {u for u in users if on.match(u)}
    assert abs(len(taken) / len(users) - share / 100) < 0.03
    bigger = re.compile(f"^.*{bucket_regex(round(256 * min(100, share + 20) / 100))}$")
    assert all(bigger.match(u) for u in taken)  # nobody leaves the canary as it grows
    assert all(on.match(u.upper()) for u in taken)


def test_stickiness_sends_named_users_by_their_id_and_the_rest_by_weight() -> None:
    _, route = route_of(CANARY, stickiness={"header": "X-User"})
    to_canary, to_stable, split = route["spec"]["rules"]
    (canary_match,) = to_canary["matches"][0]["headers"]
    (stable_match,) = to_stable["matches"][0]["headers"]
    assert backends(to_canary) == [("clf-r2", None)] and backends(to_stable) == [("clf-r1", None)]
    assert canary_match["name"] == stable_match["name"] == "X-User"
    assert re.match(canary_match["value"], "user-00") and not re.match(
        canary_match["value"], "user-ff"
    )
    assert re.match(stable_match["value"], "user-ff")
    assert backends(split) == [("clf-r1", 70), ("clf-r2", 30)]


def test_a_sticky_cookie_matches_its_value_among_others() -> None:
    _, route = route_of(CANARY, stickiness={"cookie": "uid"})
    (match,) = route["spec"]["rules"][0]["matches"][0]["headers"]
    pattern = re.compile(match["value"])
    assert match["name"] == "Cookie"
    assert pattern.match("a=1; uid=9f00; b=2") and not pattern.match("a=1; uid=9fff")


ROUTED = {"gatewayAPI": GATEWAY}


@pytest.mark.parametrize(
    ("rollout", "words"),
    [
        ({"canary": {"steps": [{"setMirror": {"percent": 10}}]}}, "setMirror steps need"),
        (
            {"trafficRouting": {"cohorts": [{"name": "qa", "revision": "Canary",
                                             "header": {"name": "X-C", "value": "1"}}]}},
            "cohorts and stickiness need",
        ),
        ({"trafficRouting": {"stickiness": {"header": "X-User"}}}, "cohorts and stickiness need"),
    ],
)  # fmt: skip
def test_what_the_splitter_cannot_do_is_refused_naming_the_field(rollout: dict, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        Rollout.model_validate(rollout)
    [refusal] = admit({**MINIMAL, "rollout": rollout})
    assert refusal.startswith("spec.rollout: ") and words in refusal
    routed = {**rollout, "trafficRouting": {**rollout.get("trafficRouting", {}), **ROUTED}}
    assert admit({**MINIMAL, "rollout": routed}) == []
    Rollout.model_validate(routed)


@pytest.mark.parametrize(
    "cohort",
    [
        {"name": "qa", "revision": "Canary"},
        {"name": "qa", "revision": "Canary", "header": {"name": "X", "value": "1"},
         "cookie": {"name": "c", "value": "1"}},
    ],
)  # fmt: skip
def test_a_cohort_sets_exactly_one_match(cohort: dict) -> None:
    rollout = {"trafficRouting": {**ROUTED, "cohorts": [cohort]}}
    [refusal] = admit({**MINIMAL, "rollout": rollout})
    assert refusal.endswith("a cohort sets exactly one of header or cookie")
    with pytest.raises(ValidationError, match="exactly one of header or cookie"):
        Rollout.model_validate(rollout)


TRAEFIK = TrafficRouting.model_validate(
    {"gatewayAPI": {**GATEWAY, "mirrorWith": "TraefikService"}, "stickiness": {"header": "X-User"}}
)


def test_a_mirror_through_traefik_puts_a_mirroring_service_in_the_stable_revision_place() -> None:
    status = CANARY.model_copy(update={"mirror_percent": 20})
    objects = plan(OWNER, SPECS, status, routing=TRAEFIK)
    kinds = [o["kind"] for o in objects if o["kind"] != "InferenceService"]
    # The service before the route that names it, so the route never names a missing one.
    assert kinds == ["InferenceGraph", "InferenceGraph", "TraefikService", "HTTPRoute"]
    mirroring, route = objects[-2], objects[-1]
    assert mirroring["apiVersion"] == "traefik.io/v1alpha1"
    assert mirroring["metadata"]["name"] == "clf-mirror"
    assert mirroring["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert mirroring["spec"] == {
        "mirroring": {
            "name": "clf-r1",
            "port": 80,
            "mirrors": [{"name": "clf-r2", "port": 80, "percent": 20}],
        }
    }
    to_canary, to_stable, split = route["spec"]["rules"]
    service = {"group": "traefik.io", "kind": "TraefikService", "name": "clf-mirror"}
    # The stable revision's users and share pass the mirror; the canary's go straight to it.
    assert to_canary["backendRefs"] == [{"name": "clf-r2", "port": 80}]
    assert to_stable["backendRefs"] == [service]
    assert split["backendRefs"] == [
        {**service, "weight": 70},
        {"name": "clf-r2", "port": 80, "weight": 30},
    ]
    assert not any("filters" in rule for rule in route["spec"]["rules"])
    assert route["metadata"]["annotations"]["pipelines.inference.dev/mirror"] == "r2=20"


def test_without_a_mirror_share_traefik_routing_names_the_graphs_alone() -> None:
    objects = plan(OWNER, SPECS, CANARY, routing=TRAEFIK)
    assert "TraefikService" not in [o["kind"] for o in objects]
    (route,) = [o for o in objects if o["kind"] == "HTTPRoute"]
    assert backends(route["spec"]["rules"][-1]) == [("clf-r1", 70), ("clf-r2", 30)]
