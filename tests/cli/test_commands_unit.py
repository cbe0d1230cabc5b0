"""Pure layer of promote, abort, retry, pause/resume and the command acknowledgement."""

from __future__ import annotations

import pytest

from pipeline_operator.api.command_annotation import command_patch
from pipeline_operator.api.v1alpha1 import COMMAND_ANNOTATION
from pipeline_operator.cli import abort, pause, promote, retry, rollout_command
from pipeline_operator.cli.errors import CliError
from pipeline_operator.cli.format import status_of
from tests.cli import samples as s


def test_promote_needs_a_rollout_in_progress() -> None:
    with pytest.raises(
        CliError,
        match=rf"^nothing to promote: pipeline clf is Healthy at "
        rf"revision {s.V1}$",
    ):
        promote.check("clf", s.healthy())


def test_promote_without_status_says_the_operator_has_not_seen_it() -> None:
    with pytest.raises(CliError, match="no status yet"):
        promote.check("clf", {"metadata": {"name": "clf"}, "spec": {}})


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (s.aborted(), "was aborted; 'kubectl pipeline retry clf'"),
        (s.canary(paused=True), r"paused \(spec.paused\); 'kubectl pipeline resume clf' first"),
        (s.canary(ready=False), rf"revision {s.V2} is not Ready \(1/2 stages ready\)"),
    ],
)
def test_promote_refusals(obj: dict, message: str) -> None:
    with pytest.raises(CliError, match=message):
        promote.check("clf", obj)


def test_promote_of_a_ready_canary_passes_and_picks_the_verb() -> None:
    promote.check("clf", s.canary())
    assert (promote.verb(False), promote.verb(True)) == ("promote", "promote-full")


def test_revision_ready_of_an_unknown_revision() -> None:
    assert promote.revision_ready(status_of(s.healthy()), "zzz") == (False, "0/0")


def test_abort_checks() -> None:
    abort.check("clf", s.canary())
    abort.check("clf", s.canary(phase="Progressing", ready=False))
    with pytest.raises(CliError, match="nothing to abort: pipeline clf is Healthy"):
        abort.check("clf", s.healthy())
    with pytest.raises(CliError, match=f"the rollout of {s.V2} was aborted"):
        abort.check("clf", s.aborted())


def test_retry_checks() -> None:
    retry.check("clf", s.aborted())
    for obj in (s.healthy(), s.canary()):
        with pytest.raises(CliError, match="nothing to retry: .*no aborted rollout"):
            retry.check("clf", obj)
    held = s.aborted()
    held["spec"]["paused"] = True
    with pytest.raises(CliError, match="pipeline clf is paused"):
        retry.check("clf", held)


def test_pause_and_resume_patches() -> None:
    assert pause.change(s.canary(), True) == {"spec": {"paused": True}}
    assert pause.change(s.canary(), False) is None
    assert pause.change(s.canary(paused=True), False) == {"spec": {"paused": False}}
    assert pause.change({"spec": {}}, True) == {"spec": {"paused": True}}
    assert pause.message("clf", True, True) == 'inferencepipeline "clf" paused'
    assert pause.message("clf", False, True) == 'inferencepipeline "clf" resumed'
    assert pause.message("clf", True, False) == 'inferencepipeline "clf" is already paused'
    assert pause.message("clf", False, False) == 'inferencepipeline "clf" is not paused'


def test_command_value_and_acknowledgement() -> None:
    patch = command_patch("promote", "42")
    assert rollout_command.command_value(patch) == "promote:42"
    obj = s.canary()
    assert rollout_command.acknowledgement(obj, "promote:42") is None
    obj["status"]["lastCommand"] = {
        "command": "promote:42",
        "result": "Accepted",
        "message": "canary moved on",
        "at": s.NOW,
    }
    ack = rollout_command.acknowledgement(obj, "promote:42")
    assert ack is not None
    assert rollout_command.outcome("clf", "promote", ack) == (
        'inferencepipeline "clf": promote accepted: canary moved on'
    )


def test_a_rejected_command_is_an_error_with_the_operators_reason() -> None:
    obj = s.canary(
        lastCommand={
            "command": "abort:7",
            "result": "Rejected",
            "message": "nothing to abort",
            "at": s.NOW,
        }
    )
    ack = rollout_command.acknowledgement(obj, "abort:7")
    assert ack is not None
    with pytest.raises(CliError, match="^abort rejected by the operator: nothing to abort$"):
        rollout_command.outcome("clf", "abort", ack)


def test_not_acknowledged_names_the_pending_annotation() -> None:
    err = rollout_command.not_acknowledged("promote", "promote:1", 10)
    assert "within 10s" in err.message and f"{COMMAND_ANNOTATION}=promote:1" in err.message
