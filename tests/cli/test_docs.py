"""docs/cli.md shows the plugin's real output: each code block after an ``<!-- example: NAME
-->`` comment is rendered here, by the plugin's own formatting, from pipelines whose status
the rollout engine wrote (walked through a canary in a simulated world), and compared."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec
from pipeline_operator.cli import history, listing, promote, rollout_command, status
from pipeline_operator.cli.errors import CliError
from pipeline_operator.cli.format import status_of
from pipeline_operator.core.observe.snapshots import build
from pipeline_operator.core.planner import Owner
from tests.cli import samples as s
from tests.unit.world import World

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```\n(.*?)\n```", re.DOTALL)
START = datetime(2024, 5, 1, 12, 4, 10, tzinfo=UTC)
NOW = START + timedelta(minutes=2)
STABLE, CANARY, OTHER = "1cc43879", "f9e9f250", "7be01c44"


def obj_of(world: World, name: str = "clf") -> dict[str, Any]:
    """The pipeline object with the engine's status and what a reconcile observes besides."""
    written = world.status.model_dump(by_alias=True, mode="json", exclude_none=True)
    obj = s.pipeline(model="bert-v2", **written)
    serving = [r for r in (world.status.stable_revision, world.status.canary_revision) if r]
    obj["metadata"]["name"] = name
    revisions = [s.stages(r) for r in serving]
    for stage in (stage for r in revisions for stage in r["stages"]):
        stage.update(replicas=1, readyReplicas=1)
    obj["status"].update(
        revisions=revisions,
        ready=f"{2 * len(serving)}/{2 * len(serving)}",
        url=f"http://{name}.ns.svc.cluster.local",
    )
    return obj


def deployed(revision: str) -> World:
    spec = InferencePipelineSpec.model_validate(s.spec("bert-v2"))
    world = World(spec=spec, desired=revision, now=START)
    world.ready[revision] = True
    world.tick()
    return world


def rollout() -> tuple[World, list[str]]:
    """clf's canary walked to its open pause at 60%, and the lines ``--watch`` printed."""
    world = deployed(STABLE)
    lines = [status.change_line(obj_of(world), world.now)]
    world.desired, world.ready[CANARY] = CANARY, True
    world.router_follows = False  # KServe rolls the router out after the graph changes
    for follows, seconds in ((False, 3), (True, 2), (True, 60)):
        world.router_follows = follows
        world.advance(seconds)
        world.tick()
        lines.append(status.change_line(obj_of(world), world.now))
    return world, lines


def examples() -> dict[str, str]:
    world, watched = rollout()
    clf = obj_of(world)
    rag = obj_of(deployed(OTHER), "rag")
    snapshots = [
        build(Owner("clf", "ns", "u-1"), revision, InferencePipelineSpec.model_validate(spec), n)
        for n, (revision, spec) in enumerate(((STABLE, s.spec()), (CANARY, s.spec("bert-v2"))), 1)
    ]
    for snapshot, minutes in zip(snapshots, (65, 2), strict=True):
        created = NOW - timedelta(minutes=minutes)
        snapshot["metadata"]["creationTimestamp"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    world.advance(30)
    world.tick("promote")
    ack = status_of(obj_of(world)).last_command
    assert ack is not None
    with pytest.raises(CliError) as refused:
        promote.check("rag", rag)
    return {
        "list": listing.render_list([clf, rag], NOW, False),
        "status": status.render_status(clf, NOW),
        "watch": "\n".join([*watched, status.change_line(obj_of(world), world.now)]),
        "history": history.render_history(clf, snapshots, NOW),
        "promote": "\n".join(
            [
                "$ kubectl pipeline promote clf",
                rollout_command.outcome("clf", "promote", ack),
                "$ kubectl pipeline promote rag",
                f"error: {refused.value.message}",
            ]
        ),
    }


def test_every_example_in_the_cli_docs_is_real_output() -> None:
    shown = dict(EXAMPLE.findall(DOC.read_text(encoding="utf-8")))
    real = examples()
    assert sorted(shown) == sorted(real)
    for name, text in real.items():
        assert shown[name] == text, f"docs/cli.md example {name!r} is stale; it reads:\n{text}"
