"""Properties of the rollout engine over random specs and random histories."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_operator.api.command_annotation import Verb
from pipeline_operator.api.v1alpha1 import (
    Analysis,
    AnalysisMetric,
    BlueGreen,
    Canary,
    CanaryStep,
    InferencePipelineSpec,
    Measurement,
    Pause,
    Phase,
    Rollout,
)
from pipeline_operator.core.revisions import active_revisions, canary_active
from pipeline_operator.core.rollout.analysis import due_measurements
from pipeline_operator.core.rollout.clock import stamp
from pipeline_operator.core.rollout.engine import Decision, Observations, step
from tests.unit.world import World, sample_spec

REVISIONS = ("r1", "r2", "r3")
VERBS: tuple[Verb, ...] = ("promote", "promote-full", "abort", "retry")


@st.composite
def canary_steps(draw: st.DrawFn) -> list[CanaryStep]:
    kinds = draw(st.lists(st.sampled_from(["weight", "pause", "analysis"]), max_size=6))
    weights = iter(
        sorted(draw(st.lists(st.integers(0, 100), min_size=len(kinds), max_size=len(kinds))))
    )
    steps = []
    for kind in kinds:
        if kind == "weight":
            steps.append(CanaryStep(set_weight=next(weights)))
        elif kind == "pause":
            duration = draw(st.sampled_from([None, "0s", "10s", "1m"]))
            steps.append(CanaryStep(pause=Pause(duration=duration)))
        else:
            metrics = [
                AnalysisMetric(
                    name=f"m{i}",
                    query="q",
                    success_condition="result > 0",
                    interval=draw(st.sampled_from(["0s", "10s", "1m"])),
                    count=draw(st.integers(1, 3)),
                    failure_limit=draw(st.integers(0, 1)),
                )
                for i in range(draw(st.integers(1, 2)))
            ]
            steps.append(CanaryStep(analysis=Analysis(metrics=metrics)))
    return steps


@st.composite
def rollouts(draw: st.DrawFn) -> Rollout:
    deadline = draw(st.sampled_from([10, 60, 600]))
    if draw(st.booleans()):
        canary = draw(st.one_of(st.none(), canary_steps().map(lambda s: Canary(steps=s))))
        return Rollout(strategy="Canary", canary=canary, progress_deadline_seconds=deadline)
    blue_green = BlueGreen(
        auto_promotion_seconds=draw(st.sampled_from([None, 0, 30])),
        scale_down_delay_seconds=draw(st.sampled_from([0, 30])),
    )
    return Rollout(strategy="BlueGreen", blue_green=blue_green, progress_deadline_seconds=deadline)


@dataclass(frozen=True)
class Act:
    """One change of the world between two reconciles."""

    kind: str
    value: Any = None


advance = st.builds(Act, st.just("advance"), st.sampled_from([0, 1, 5, 10, 30, 60, 600]))
readiness = st.builds(
    Act,
    st.just("ready"),
    st.tuples(st.sampled_from(REVISIONS), st.sampled_from([True, True, False])),
)
desired = st.builds(Act, st.just("desired"), st.sampled_from(REVISIONS))
measure = st.builds(Act, st.just("measure"), st.sampled_from([True, True, False]))
actions = st.one_of(
    advance,
    advance,
    readiness,
    readiness,
    readiness,
    desired,
    desired,
    measure,
    st.builds(Act, st.just("command"), st.sampled_from(VERBS)),
    st.builds(Act, st.just("paused"), st.sampled_from([False, False, True])),
    st.builds(Act, st.just("invalid"), st.sampled_from([None, None, None, "cycle"])),
    st.builds(Act, st.just("rollout"), rollouts()),
)


class Driver:
    """A world changed by actions, checked after every reconcile."""

    def __init__(self, rollout: Rollout) -> None:
        self.world = World(spec=sample_spec(rollout))
        self.invalid: str | None = None

    def apply(self, act: Act) -> None:
        world = self.world
        command: Verb | None = None
        measurements: list[Measurement] = []
        if act.kind == "advance":
            world.advance(act.value)
        elif act.kind == "ready":
            revision, ready = act.value
            world.ready[revision] = ready
            world.reasons[revision] = "" if ready else f"stage model of {revision}: not ready"
        elif act.kind == "command":
            command = act.value
        elif act.kind == "desired":
            world.desired = str(act.value)
        elif act.kind == "paused":
            world.spec = world.spec.model_copy(update={"paused": act.value})
        elif act.kind == "invalid":
            self.invalid = act.value
        elif act.kind == "measure":
            measurements = measure_all(world, success=bool(act.value))
        else:
            world.spec = world.spec.model_copy(update={"rollout": act.value})
        self.reconcile(world.observe(command, measurements, self.invalid))

    def reconcile(self, obs: Observations) -> Decision:
        world = self.world
        before = world.status.model_dump()
        decision = step(world.spec, world.status, obs)
        assert world.status.model_dump() == before, "the input status was modified"
        check_invariants(world.spec, obs, decision)
        again = step(world.spec, decision.status, obs)
        assert again.events == (), f"events on a re-run: {again.events}"
        assert again.status == decision.status
        assert again.requeue_after == decision.requeue_after
        world.status = decision.status
        world.events.extend(decision.events)
        return decision


def measure_all(world: World, success: bool) -> list[Measurement]:
    return [
        Measurement(
            metric=m.name, value=1.0 if success else 0.0, success=success, at=stamp(world.now)
        )
        for m in due_measurements(world.spec, world.status, world.now)
    ]


def check_invariants(spec: InferencePipelineSpec, obs: Observations, decision: Decision) -> None:
    status = decision.status
    if obs.invalid is None:
        assert status.strategy == spec.rollout.strategy
    if status.stable_revision is None:
        assert status.traffic == []
        return
    active = active_revisions(status)
    assert sum(t.weight for t in status.traffic) == 100
    assert all(t.weight > 0 for t in status.traffic)
    assert all(t.revision in active for t in status.traffic)
    assert active[0] == status.stable_revision
    assert status.canary_revision != status.stable_revision
    if status.phase == Phase.ABORTED:
        assert status.canary_revision is not None
        assert [t.revision for t in status.traffic] == [status.stable_revision]
    if not canary_active(status) or status.strategy == "BlueGreen":
        assert status.canary_weight == 0
    assert decision.requeue_after is None or decision.requeue_after >= 0
    assert {c.type for c in status.conditions} <= {"Available", "Progressing", "Ready"}


FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(rollouts(), st.lists(actions, min_size=15, max_size=40))
def test_invariants_hold_over_random_histories(rollout: Rollout, history: list[Act]) -> None:
    driver = Driver(rollout)
    for act in history:
        driver.apply(act)


@st.composite
def analysed_rollouts(draw: st.DrawFn) -> Rollout:
    steps = draw(canary_steps().filter(lambda s: any(x.analysis for x in s)))
    return Rollout(canary=Canary(steps=steps), progress_deadline_seconds=600)


analysis_actions = st.one_of(
    advance, measure, measure, desired, st.builds(Act, st.just("command"), st.sampled_from(VERBS))
)


@FAST
@given(analysed_rollouts(), st.lists(analysis_actions, min_size=10, max_size=40))
def test_invariants_hold_through_analysis_steps(rollout: Rollout, history: list[Act]) -> None:
    driver = Driver(rollout)
    driver.world.ready.update(dict.fromkeys(REVISIONS, True))
    for act in history:
        driver.apply(act)
        analysis = driver.world.status.analysis
        if analysis is not None and analysis.phase == "Failed":
            assert driver.world.status.phase == Phase.ABORTED


@FAST
@given(rollouts(), st.lists(actions, min_size=15, max_size=40))
def test_every_rollout_settles_once_revisions_are_ready_and_promoted(
    rollout: Rollout, history: list[Act]
) -> None:
    driver = Driver(rollout)
    for act in history:
        driver.apply(act)
    world = driver.world
    driver.invalid = None
    world.spec = world.spec.model_copy(update={"paused": False})
    world.ready.update(dict.fromkeys(REVISIONS, True))
    world.reasons.clear()
    for _ in range(12):
        world.advance(3600)
        driver.reconcile(world.observe("promote", measure_all(world, success=True)))
        if world.status.phase in (Phase.HEALTHY, Phase.ABORTED):
            break
    assert world.status.phase in (Phase.HEALTHY, Phase.ABORTED), world.status.message
    if world.status.phase == Phase.HEALTHY:
        assert world.status.canary_revision is None
        assert world.status.stable_revision == world.desired
        assert [(t.revision, t.weight) for t in world.status.traffic] == [(world.desired, 100)]
