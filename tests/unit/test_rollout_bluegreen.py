"""Blue-green rollouts: preview, promotion (manual or automatic), scale-down."""

from __future__ import annotations

from pipeline_operator.api.v1alpha1 import BlueGreen, Phase, Rollout
from pipeline_operator.core.revisions import active_revisions, canary_active
from tests.unit.world import World, reasons, sample_spec


def blue_green(auto: int | None = None, delay: int = 30, deadline: int = 600) -> World:
    settings = BlueGreen(auto_promotion_seconds=auto, scale_down_delay_seconds=delay)
    rollout = Rollout(strategy="BlueGreen", blue_green=settings, progress_deadline_seconds=deadline)
    world = World(spec=sample_spec(rollout))
    world.ready["r1"] = True
    world.tick()
    world.desired = "r2"
    return world


def weights(world: World) -> list[tuple[str, int]]:
    return [(t.revision, t.weight) for t in world.status.traffic]


def test_preview_waits_for_promote_then_old_revision_scales_down() -> None:
    world = blue_green()
    assert reasons(world.tick()) == ["RolloutStarted"]
    assert world.status.canary_revision == "r2"
    assert world.status.phase == Phase.PROGRESSING
    assert weights(world) == [("r1", 100)]
    assert active_revisions(world.status) == ["r1", "r2"]

    world.ready["r2"] = True
    world.advance(5)
    ready = world.tick()
    assert reasons(ready) == ["PreviewReady"]
    assert ready.requeue_after is None
    assert world.status.phase == Phase.PAUSED
    assert world.status.paused_at == "2026-01-01T00:00:05Z"
    assert world.status.message == "preview r2: Ready, waiting for promote"
    assert weights(world) == [("r1", 100)]

    world.advance(100)
    promoted = world.tick(command="promote")
    assert reasons(promoted) == ["Promoted", "RolloutCompleted"]
    assert world.status.stable_revision == "r2"
    assert world.status.previous_revision == "r1"
    assert world.status.canary_revision is None
    assert world.status.scale_down_at == "2026-01-01T00:02:15Z"
    assert promoted.requeue_after == 30
    assert weights(world) == [("r2", 100)]
    assert active_revisions(world.status) == ["r2", "r1"]
    assert world.status.phase == Phase.HEALTHY

    world.advance(30)
    scaled = world.tick()
    assert reasons(scaled) == ["ScaledDown"]
    assert world.status.previous_revision is None
    assert world.status.scale_down_at is None
    assert scaled.requeue_after is None
    assert active_revisions(world.status) == ["r2"]


def test_auto_promotion_after_the_preview_is_ready_long_enough() -> None:
    world = blue_green(auto=60, delay=0)
    world.tick()
    world.advance(10)
    world.ready["r2"] = True
    decision = world.tick()
    assert decision.requeue_after == 60
    assert (
        world.status.message == "preview r2: Ready, promoting automatically at 2026-01-01T00:01:10Z"
    )
    world.advance(59)
    assert reasons(world.tick()) == []
    world.advance(1)
    promoted = world.tick()
    assert reasons(promoted) == ["Promoted", "RolloutCompleted", "ScaledDown"]
    assert world.status.stable_revision == "r2"
    assert world.status.previous_revision is None
    assert promoted.requeue_after is None


def test_auto_promotion_restarts_counting_when_the_preview_flaps() -> None:
    world = blue_green(auto=60)
    world.ready["r2"] = True
    world.tick()
    world.advance(50)
    world.ready["r2"] = False
    world.tick()
    world.ready["r2"] = True
    world.advance(20)
    assert world.tick().requeue_after == 60


def test_promote_before_the_preview_is_ready_is_rejected() -> None:
    world = blue_green()
    world.tick()
    decision = world.tick(command="promote")
    assert reasons(decision) == ["CommandRejected"]
    ack = world.status.last_command
    assert ack is not None
    assert ack.result == "Rejected"
    assert ack.message == "preview revision r2 is not ready"
    assert world.status.stable_revision == "r1"


def test_preview_progress_deadline_aborts() -> None:
    world = blue_green(deadline=30)
    world.tick()
    world.advance(30)
    assert reasons(world.tick()) == ["ProgressDeadlineExceeded", "Aborted"]
    assert world.status.phase == Phase.ABORTED
    assert not canary_active(world.status)
    assert active_revisions(world.status) == ["r1"]


def test_a_new_rollout_keeps_the_previous_revision_until_its_scale_down() -> None:
    world = blue_green()
    world.ready["r2"] = True
    world.tick()
    world.tick(command="promote-full")
    world.desired = "r3"
    world.tick()
    assert active_revisions(world.status) == ["r2", "r3", "r1"]
