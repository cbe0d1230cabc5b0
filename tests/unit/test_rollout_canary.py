"""Canary rollouts, step by step."""

from __future__ import annotations

from pipeline_operator.api.v1alpha1 import (
    Canary,
    CanaryStep,
    Pause,
    Phase,
    Rollout,
    SetMirror,
    TrafficRouting,
)
from pipeline_operator.core.revisions import active_revisions, canary_active
from tests.unit.world import World, reasons, sample_spec


def weights(world: World) -> list[tuple[str, int]]:
    return [(t.revision, t.weight) for t in world.status.traffic]


def condition(world: World, kind: str) -> tuple[str, str]:
    found = next(c for c in world.status.conditions if c.type == kind)
    return found.status, found.reason


def canary(*steps: CanaryStep, deadline: int = 600) -> World:
    rollout = Rollout(canary=Canary(steps=list(steps)), progress_deadline_seconds=deadline)
    return World(spec=sample_spec(rollout))


def healthy(world: World, revision: str = "r1") -> World:
    """Bring ``revision`` up as the stable revision."""
    world.desired = revision
    world.ready[revision] = True
    world.tick()
    assert world.status.phase == Phase.HEALTHY
    return world


WALK = (
    CanaryStep(set_weight=10),
    CanaryStep(pause=Pause(duration="30s")),
    CanaryStep(set_weight=50),
    CanaryStep(pause=Pause()),
    CanaryStep(set_weight=100),
)


def test_first_deployment_progresses_until_ready_then_is_healthy() -> None:
    world = canary(*WALK)
    first = world.tick()
    assert reasons(first) == ["Deploying"]
    assert world.status.phase == Phase.PROGRESSING
    assert world.status.stable_revision == "r1"
    assert weights(world) == [("r1", 100)]
    assert condition(world, "Progressing") == ("True", "RolloutInProgress")
    assert condition(world, "Ready") == ("False", "RolloutInProgress")
    world.ready["r1"] = True
    assert reasons(world.tick()) == []
    assert world.status.phase == Phase.HEALTHY
    assert world.status.message == "revision r1 serves 100%"
    assert condition(world, "Ready") == ("True", "Ready")
    assert condition(world, "Progressing") == ("False", "NoRollout")


def test_first_deployment_past_its_deadline_is_degraded() -> None:
    world = canary(*WALK, deadline=60)
    world.reasons["r1"] = "stage model: ImagePullBackOff"
    assert world.tick().requeue_after == 60
    world.advance(60)
    decision = world.tick()
    assert reasons(decision) == ["ProgressDeadlineExceeded"]
    assert world.status.phase == Phase.DEGRADED
    world.advance(60)
    assert reasons(world.tick()) == []


def test_steady_state_not_ready_is_degraded_with_the_reason() -> None:
    world = healthy(canary(*WALK))
    world.ready["r1"] = False
    world.reasons["r1"] = "stage model: ContainerMissing"
    world.tick()
    assert world.status.phase == Phase.DEGRADED
    assert condition(world, "Available") == ("False", "StableNotReady")
    assert "stage model: ContainerMissing" in world.status.message
    world.ready["r1"] = True
    world.tick()
    assert world.status.phase == Phase.HEALTHY


def test_walk_setweight_timed_pause_setweight_pause_to_full() -> None:
    world = healthy(canary(*WALK))
    world.desired = "r2"
    started = world.tick()
    assert reasons(started) == ["RolloutStarted"]
    assert world.status.canary_revision == "r2"
    assert world.status.current_step_index == 0
    assert world.status.phase == Phase.PROGRESSING
    assert weights(world) == [("r1", 100)]

    world.ready["r2"] = True
    at_10 = world.tick()
    assert reasons(at_10) == ["WeightChanged", "Paused"]
    assert world.status.phase == Phase.PAUSED
    assert world.status.paused_at == "2026-01-01T00:00:00Z"
    assert weights(world) == [("r1", 90), ("r2", 10)]
    assert world.status.canary_weight == 10
    assert world.status.message == "canary r2 at 10%, step 2/5: paused for 30s"
    assert at_10.requeue_after == 30
    assert condition(world, "Progressing") == ("True", "RolloutPaused")

    world.advance(29)
    assert reasons(world.tick()) == []
    world.advance(1)
    at_50 = world.tick()
    assert reasons(at_50) == ["Resumed", "WeightChanged", "Paused"]
    assert weights(world) == [("r1", 50), ("r2", 50)]
    assert world.status.message == "canary r2 at 50%, step 4/5: paused until promote"
    assert at_50.requeue_after is None

    world.advance(3600)
    assert reasons(world.tick()) == []
    done = world.tick(command="promote")
    assert reasons(done) == ["Promoted", "WeightChanged", "RolloutCompleted"]
    assert world.status.last_command is not None
    assert world.status.last_command.result == "Accepted"
    assert world.status.stable_revision == "r2"
    assert world.status.canary_revision is None
    assert world.status.current_step_index is None
    assert world.status.canary_weight == 0
    assert weights(world) == [("r2", 100)]
    assert world.status.phase == Phase.HEALTHY
    assert active_revisions(world.status) == ["r2"]
    assert condition(world, "Progressing") == ("False", "RolloutCompleted")
    assert condition(world, "Ready") == ("True", "Ready")


def test_a_pause_under_way_stays_paused_while_the_router_rolls_out_again() -> None:
    """A hand edit of the graph, reverted mid-pause, restarts the router: until it serves the
    weight again the phase says Paused, as the message does."""
    world = healthy(canary(*WALK))
    world.desired = "r2"
    world.tick()
    world.ready["r2"] = True
    world.tick()
    world.advance(30)
    world.tick()
    assert world.status.message == "canary r2 at 50%, step 4/5: paused until promote"
    world.router_follows, world.served = False, {"r1": 100}
    world.advance(5)
    world.tick()
    assert world.status.phase == Phase.PAUSED
    assert world.status.message == "canary r2 at 50%, step 4/5: paused until promote"
    assert condition(world, "Progressing") == ("True", "RolloutPaused")


def test_a_fix_for_a_first_deployment_that_never_came_up_replaces_it_at_once() -> None:
    """Nothing of r1 ever served: a canary of r2 would send 80% of requests to it and wait
    for a promote. r2 becomes the stable revision at once."""
    world = canary(CanaryStep(set_weight=20), CanaryStep(pause=Pause()), deadline=60)
    world.tick()
    world.advance(61)
    world.tick()
    assert world.status.phase == Phase.DEGRADED
    world.desired, world.ready["r2"] = "r2", True
    fixed = world.tick()
    assert reasons(fixed) == ["Deploying"]
    assert "in place of r1, which never became Ready" in fixed.events[0].message
    assert world.status.canary_revision is None
    assert weights(world) == [("r2", 100)]
    assert active_revisions(world.status) == ["r2"]
    assert world.status.phase == Phase.HEALTHY
    assert world.status.stable_ready_at is not None


def test_a_stable_revision_that_served_once_is_still_rolled_out_over() -> None:
    """A revision that was Ready and is not now (a node lost) keeps the canary's protection."""
    world = healthy(canary(CanaryStep(set_weight=20), CanaryStep(pause=Pause())))
    world.ready["r1"] = False
    world.tick()
    world.desired, world.ready["r2"] = "r2", True
    world.tick()
    assert world.status.canary_revision == "r2"
    assert weights(world) == [("r1", 80), ("r2", 20)]


def test_rerun_on_own_output_changes_nothing() -> None:
    world = healthy(canary(*WALK))
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    before = world.status.model_copy(deep=True)
    again = world.tick()
    assert again.events == ()
    assert again.status == before
    assert again.requeue_after == 30


def test_abort_mid_canary_sends_traffic_back_and_stays_aborted() -> None:
    world = healthy(canary(*WALK))
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    aborted = world.tick(command="abort")
    assert reasons(aborted) == ["Aborted"]
    assert world.status.phase == Phase.ABORTED
    assert world.status.abort_reason == "aborted by user"
    assert world.status.canary_revision == "r2"
    assert not canary_active(world.status)
    assert weights(world) == [("r1", 100)]
    assert active_revisions(world.status) == ["r1"]
    assert condition(world, "Progressing") == ("False", "RolloutAborted")
    world.advance(3600)
    assert reasons(world.tick()) == []
    assert world.status.phase == Phase.ABORTED

    retried = world.tick(command="retry")
    assert reasons(retried) == ["RolloutStarted", "WeightChanged", "Paused"]
    assert world.status.phase == Phase.PAUSED
    assert weights(world) == [("r1", 90), ("r2", 10)]


def test_new_revision_after_abort_starts_a_new_rollout() -> None:
    world = healthy(canary(*WALK))
    world.desired = "r2"
    world.tick()
    world.tick(command="abort")
    world.desired = "r3"
    assert reasons(world.tick()) == ["RolloutStarted"]
    assert world.status.canary_revision == "r3"
    assert world.status.abort_reason is None
    assert world.status.phase == Phase.PROGRESSING


def test_spec_reverted_to_stable_after_abort_clears_it() -> None:
    world = healthy(canary(*WALK))
    world.desired = "r2"
    world.tick()
    world.tick(command="abort")
    world.desired = "r1"
    assert reasons(world.tick()) == ["RolloutReverted"]
    assert world.status.canary_revision is None
    assert world.status.phase == Phase.HEALTHY


def test_progress_deadline_aborts_naming_revision_and_reason() -> None:
    world = healthy(canary(*WALK, deadline=120))
    world.desired = "r2"
    world.reasons["r2"] = "stage model: ContainerMissing"
    assert world.tick().requeue_after == 120
    world.advance(119)
    assert world.tick().requeue_after == 1
    assert world.status.message == (
        "canary r2 at 0%, step 1/5: waiting for it to become Ready: stage model: ContainerMissing"
    )
    world.advance(1)
    decision = world.tick()
    assert reasons(decision) == ["ProgressDeadlineExceeded", "Aborted"]
    assert world.status.phase == Phase.ABORTED
    reason = world.status.abort_reason or ""
    assert "r2" in reason
    assert "stage model: ContainerMissing" in reason
    assert weights(world) == [("r1", 100)]


def test_deadline_counts_from_when_the_canary_stopped_being_ready() -> None:
    world = healthy(canary(*WALK, deadline=60))
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    world.advance(3600)
    world.ready["r2"] = False
    decision = world.tick()
    assert world.status.phase == Phase.PROGRESSING
    assert decision.requeue_after == 60
    world.ready["r2"] = True
    world.advance(30)
    world.tick()
    assert world.status.waiting_since is None


def test_replacing_an_in_flight_canary() -> None:
    world = healthy(canary(*WALK))
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    world.desired = "r3"
    decision = world.tick()
    assert reasons(decision) == ["RolloutStarted"]
    assert "replaces r2" in decision.events[0].message
    assert world.status.canary_revision == "r3"
    assert world.status.current_step_index == 0
    assert world.status.paused_at is None
    assert weights(world) == [("r1", 100)]
    assert active_revisions(world.status) == ["r1", "r3"]


def test_spec_reverted_mid_canary_drops_it() -> None:
    world = healthy(canary(*WALK))
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    world.desired = "r1"
    assert reasons(world.tick()) == ["RolloutReverted"]
    assert world.status.canary_revision is None
    assert weights(world) == [("r1", 100)]
    assert world.status.phase == Phase.HEALTHY


def test_spec_paused_holds_everything_and_stops_the_clock() -> None:
    world = healthy(canary(*WALK))
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    world.advance(10)
    world.spec = world.spec.model_copy(update={"paused": True})
    held = world.tick()
    assert reasons(held) == ["Paused"]
    assert held.requeue_after is None
    assert world.status.phase == Phase.PAUSED
    assert world.status.message == "canary r2 at 10%, step 2/5: held by spec.paused"
    world.advance(3600)
    assert reasons(world.tick()) == []
    assert world.status.current_step_index == 1
    world.spec = world.spec.model_copy(update={"paused": False})
    released = world.tick()
    assert reasons(released) == ["Resumed"]
    assert released.requeue_after == 20
    world.advance(20)
    assert reasons(world.tick()) == ["Resumed", "WeightChanged", "Paused"]


def test_a_spec_change_under_spec_paused_is_held_until_resumed() -> None:
    world = healthy(canary(*WALK))
    world.spec = world.spec.model_copy(update={"paused": True})
    world.desired = "r2"
    world.ready["r2"] = True
    assert reasons(world.tick()) == ["RolloutHeld"]
    assert world.status.canary_revision is None
    assert world.status.pending_revision == "r2"
    assert active_revisions(world.status) == ["r1"], "nothing of r2 is deployed"
    assert weights(world) == [("r1", 100)]
    assert world.status.phase == Phase.PAUSED
    assert world.status.message == "revision r1 serves 100%; revision r2 waits for spec.paused"
    assert condition(world, "Progressing") == ("True", "RolloutPaused")
    assert reasons(world.tick()) == []

    world.desired = "r3"  # another change while held replaces the pending one, nothing else
    assert reasons(world.tick()) == ["RolloutHeld"]
    assert world.status.pending_revision == "r3"

    world.spec = world.spec.model_copy(update={"paused": False})
    world.ready["r3"] = True
    assert reasons(world.tick())[0] == "RolloutStarted"
    assert world.status.canary_revision == "r3"
    assert world.status.pending_revision is None


def test_a_rollout_in_flight_under_spec_paused_is_neither_replaced_nor_reverted() -> None:
    world = healthy(canary(*WALK))
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    world.spec = world.spec.model_copy(update={"paused": True})
    world.tick()
    for held in ("r3", "r1"):
        world.desired = held
        world.tick()
        assert world.status.canary_revision == "r2"
        assert world.status.pending_revision == held
        assert world.status.phase == Phase.PAUSED


def test_strategy_change_restarts_the_rollout() -> None:
    world = healthy(canary(*WALK))
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    world.spec = sample_spec(Rollout(strategy="BlueGreen"))
    decision = world.tick()
    assert reasons(decision) == ["RolloutStarted", "PreviewReady"]
    assert "strategy changed to BlueGreen" in decision.events[0].message
    assert weights(world) == [("r1", 100)]
    assert world.status.strategy == "BlueGreen"


def test_default_steps_set_20_then_wait_for_promote() -> None:
    world = healthy(World(spec=sample_spec()))
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    assert weights(world) == [("r1", 80), ("r2", 20)]
    assert world.status.message == "canary r2 at 20%, step 2/2: paused until promote"


def test_step_and_weight_columns_count_as_the_message_and_show_dashes_without_a_rollout() -> None:
    world = healthy(World(spec=sample_spec()))
    assert (world.status.step, world.status.weight) == ("-", "-")
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    assert (world.status.step, world.status.weight) == ("2/2", "20%")  # "step 2/2" in message
    world.tick("promote")
    assert world.status.phase == Phase.HEALTHY
    assert (world.status.step, world.status.weight) == ("-", "-")


def test_no_steps_promotes_as_soon_as_ready() -> None:
    world = healthy(canary())
    world.desired = "r2"
    world.tick()
    world.ready["r2"] = True
    assert reasons(world.tick()) == ["RolloutCompleted"]
    assert world.status.stable_revision == "r2"


def test_zero_length_pause_passes_in_one_reconcile() -> None:
    world = healthy(canary(CanaryStep(set_weight=30), CanaryStep(pause=Pause(duration="0s"))))
    world.desired = "r2"
    world.ready["r2"] = True
    decision = world.tick()
    assert reasons(decision) == [
        "RolloutStarted",
        "WeightChanged",
        "Paused",
        "Resumed",
        "RolloutCompleted",
    ]


def test_full_weight_step_takes_stable_out_of_traffic_but_keeps_it_active() -> None:
    world = healthy(canary(CanaryStep(set_weight=100), CanaryStep(pause=Pause())))
    world.desired = "r2"
    world.ready["r2"] = True
    world.tick()
    assert weights(world) == [("r2", 100)]
    assert active_revisions(world.status) == ["r1", "r2"]


def test_transition_time_moves_only_when_a_condition_flips() -> None:
    world = healthy(canary(*WALK))

    def since(kind: str) -> str:
        return next(c.last_transition_time for c in world.status.conditions if c.type == kind)

    available = since("Available")
    world.desired = "r2"
    world.advance(60)
    world.tick()
    world.ready["r2"] = True
    world.advance(60)
    world.tick()
    assert since("Available") == available
    assert since("Progressing") == "2026-01-01T00:01:00Z"
    assert since("Ready") == "2026-01-01T00:01:00Z"


def test_observed_generation_and_strategy_are_recorded() -> None:
    from pipeline_operator.core.rollout.engine import step

    world = canary(*WALK)
    decision = step(world.spec, world.status, world.observe(), generation=7)
    assert decision.status.observed_generation == 7
    assert decision.status.strategy == "Canary"
    assert all(c.observed_generation == 7 for c in decision.status.conditions)


def test_a_mirror_step_copies_requests_until_a_later_step_changes_it_or_the_rollout_ends() -> None:
    steps = [
        CanaryStep(set_mirror=SetMirror(percent=25)),
        CanaryStep(pause=Pause(duration="30s")),
        CanaryStep(set_weight=50),
        CanaryStep(pause=Pause()),
    ]
    routing = TrafficRouting.model_validate({"gatewayAPI": {"parentRefs": [{"name": "gw"}]}})
    rollout = Rollout(canary=Canary(steps=steps), traffic_routing=routing)
    world = healthy(World(spec=sample_spec(rollout)))
    world.router_follows = False
    world.served, world.mirror_served = {"r1": 100}, 0
    world.desired, world.ready["r2"] = "r2", True
    decision = world.tick()
    assert "MirrorChanged" in reasons(decision) and world.status.mirror_percent == 25
    assert world.status.canary_weight == 0 and world.status.paused_at is None
    world.advance(60)
    world.tick()
    assert world.status.paused_at is None  # the pause waits for the route to mirror
    world.mirror_served = 25
    world.tick()
    assert world.status.paused_at is not None
    assert "(mirrored 25%)" in world.status.message
    world.router_follows = True
    world.advance(30)
    world.tick()
    assert (world.status.canary_weight, world.status.mirror_percent) == (50, 25)
    world.tick("promote")
    assert world.status.stable_revision == "r2" and world.status.mirror_percent == 0
