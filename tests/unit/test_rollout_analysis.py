"""Analysis: success conditions, measurements, verdicts, and the analysis canary step."""

from __future__ import annotations

import math
import re
from datetime import datetime

import pytest

from pipeline_operator.api.success_condition import ConditionError, evaluate
from pipeline_operator.api.v1alpha1 import (
    Analysis,
    AnalysisMetric,
    AnalysisStatus,
    Canary,
    CanaryStep,
    Measurement,
    Phase,
    Rollout,
)
from pipeline_operator.core.rollout.analysis import (
    AnalysisError,
    NoDataError,
    Subject,
    due_measurements,
    measure,
    record,
    render_query,
)
from tests.unit.world import EPOCH, World, reasons, sample_spec


@pytest.mark.parametrize(
    ("condition", "result", "expected"),
    [
        ("result >= 0.99", 0.995, True),
        ("result >= 0.99", 0.98, False),
        ("result < 500", 499.9, True),
        ("result < 500", 500, False),
        ("result<=1e3", 1000, True),
        ("0.5 < result", 0.6, True),
        ("1 < result", 0.6, False),
        ("result == -1", -1, True),
        ("result == 1.0", 1, True),
        ("result != 0", 0, False),
        ("result > 0 && result < 1", 0.5, True),
        ("result > 0 && result < 1", 1.5, False),
        ("result < 0 || result > 1", 2, True),
        ("result < 0 || result > 1", 0.5, False),
        ("result < 500 && result > 0", 250, True),
        ("!(result > 0.05)", 0.01, True),
        ("!(result > 0.05)", 0.1, False),
        ("(result < 0 || result > 10) && result != 20", 20, False),
        ("result > 0.5 || result < 0.1 && result > 0", 0.7, True),
        ("result in [1.0, 2.0]", 2, True),
        ("result > 0 ? result < 1 : false", 0.5, True),
        ("result >= 0.99", math.nan, False),
        ("!(result > 0.05)", math.nan, False),
        ("result != 0", math.nan, False),
    ],
)
def test_success_condition(condition: str, result: float, expected: bool) -> None:
    assert evaluate(condition, result) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("", "syntax error"),
        ("result", "not true or false"),
        ("result + 1", "not true or false"),
        ("result >", "syntax error at column 8"),
        ("result >>= 1", "syntax error at column 9"),
        ("result >= 1 1", "syntax error"),
        ("(result > 1", "syntax error"),
        ("result > 1)", "syntax error"),
        ("result = 1", "syntax error"),
        ("result > 0 and result < 1", "syntax error"),
        ("result.__class__", "does not support field selection"),
        ("result > 0 || result.x", "fails on result 0"),
        ("__import__('os').system('true')", "undeclared reference"),
        ("result > x", "names x: the only variable is result"),
        ("[1.0].exists(v, v == result)", "names v"),
        ("len(result) > 1", "undeclared reference to 'len'"),
        ("int(result) / 0 > 1", "divide by zero"),
    ],
)
def test_invalid_success_condition_is_refused_without_evaluating_it(
    condition: str, message: str
) -> None:
    with pytest.raises(ConditionError, match=re.escape(message)):
        evaluate(condition, 1.0)


def test_render_query() -> None:
    query = 'e{pipeline="{{pipeline}}",revision="{{revision}}"} / e{revision="{{stable}}"}'
    assert render_query(query, Subject("sentiment", "3f2a9c1d", "0887586c")) == (
        'e{pipeline="sentiment",revision="3f2a9c1d"} / e{revision="0887586c"}'
    )


class Fixed:
    """A provider that answers one value, or fails."""

    def __init__(self, value: float | None) -> None:
        self.value = value

    def query(self, metric: AnalysisMetric, subject: Subject) -> float:
        if self.value is None:
            raise AnalysisError("no data for the query")
        return self.value


SUBJECT = Subject("p", "r2", "r1")
METRIC = AnalysisMetric(
    name="success-rate", query="q", success_condition="result >= 0.99", interval="10s", count=2
)


def test_measure_judges_the_value_and_turns_errors_into_failures() -> None:
    now = datetime(2026, 1, 1, 0, 0, 10, tzinfo=EPOCH.tzinfo)
    good = measure(Fixed(0.995), METRIC, SUBJECT, now)
    assert (good.success, good.value, good.at) == (True, 0.995, "2026-01-01T00:00:10Z")
    assert measure(Fixed(0.9), METRIC, SUBJECT, now).success is False
    failed = measure(Fixed(None), METRIC, SUBJECT, now)
    assert (failed.success, failed.value, failed.message) == (False, None, "no data for the query")
    broken = METRIC.model_copy(update={"success_condition": "result >>= 1"})
    assert measure(Fixed(1.0), broken, SUBJECT, now).success is False


def sample(metric: str, success: bool, second: int) -> Measurement:
    return Measurement(
        metric=metric, success=success, at=f"2026-01-01T00:00:{second:02d}Z", value=1.0
    )


def test_record_ignores_repeats_unknown_metrics_and_extras() -> None:
    start = AnalysisStatus(step_index=0, revision="r2")
    taken = [
        sample("success-rate", True, 10),
        sample("success-rate", True, 10),
        sample("latency", True, 10),
        sample("success-rate", True, 20),
        sample("success-rate", False, 30),
    ]
    result = record(start, [METRIC], taken)
    assert [m.at[-3:] for m in result.measurements] == ["10Z", "20Z"]
    assert result.phase == "Successful"


def error(metric: str, second: int) -> Measurement:
    at = f"2026-01-01T00:00:{second:02d}Z"
    return Measurement(metric=metric, success=False, error=True, message="no data", at=at)


def test_an_error_is_retried_not_counted_until_too_many_come_in_a_row() -> None:
    patient = METRIC.model_copy(update={"count": 2, "consecutive_error_limit": 2})
    status = AnalysisStatus(step_index=0, revision="r2")
    status = record(status, [patient], [error("success-rate", 10), error("success-rate", 20)])
    assert (status.phase, status.message) == ("Running", "success-rate 0/2")
    status = record(status, [patient], [sample("success-rate", True, 30)])
    status = record(status, [patient], [error("success-rate", 40), error("success-rate", 50)])
    assert status.phase == "Running"  # the earlier errors are no longer in a row
    status = record(status, [patient], [sample("success-rate", True, 59)])
    assert status.phase == "Successful"
    too_many = [error("success-rate", s) for s in (10, 20, 30)]
    failed = record(AnalysisStatus(step_index=0, revision="r2"), [patient], too_many)
    assert failed.phase == "Failed"
    assert "3 errors in a row (limit 2): no data" in failed.message


class Silent:
    """A provider whose query matches no series."""

    def query(self, metric: AnalysisMetric, subject: Subject) -> float:
        raise NoDataError("query 'q' matched no series")


def no_data(second: int) -> Measurement:
    at = datetime(2026, 1, 1, 0, 0, second, tzinfo=EPOCH.tzinfo)
    return measure(Silent(), METRIC, SUBJECT, at)


def test_no_series_is_neither_a_failure_nor_an_error_and_only_the_latest_is_kept() -> None:
    strict = METRIC.model_copy(update={"consecutive_error_limit": 0, "failure_limit": 0})
    first = no_data(10)
    assert (first.no_data, first.error, first.success) == (True, False, False)
    status = AnalysisStatus(step_index=0, revision="r2")
    for second in (10, 20, 30, 40):
        status = record(status, [strict], [no_data(second)])
    # Four intervals without data: not an abort (no error limit, no failure), one entry kept.
    assert status.phase == "Running"
    assert [m.at[-3:] for m in status.measurements] == ["40Z"]
    assert status.message == "success-rate 0/2 (no series yet: query 'q' matched no series)"
    # Data then arrives: counted as usual, the no-data entry stays as history.
    status = record(status, [strict], [sample("success-rate", True, 50)])
    assert (status.phase, status.message) == ("Running", "success-rate 1/2")
    # A no-data result does not break a run of errors either.
    failed = record(status, [strict], [error("success-rate", 55), no_data(58)])
    assert failed.phase == "Failed" and "1 errors in a row (limit 0)" in failed.message
    lenient = strict.model_copy(update={"consecutive_error_limit": 1})
    ok = AnalysisStatus(step_index=0, revision="r2")
    ok = record(ok, [lenient], [no_data(10), sample("success-rate", True, 20)])
    ok = record(ok, [lenient], [error("success-rate", 30), no_data(40)])
    ok = record(ok, [lenient], [sample("success-rate", True, 50)])
    assert ok.phase == "Successful"


def test_a_provider_error_is_an_error_a_bad_value_a_failure() -> None:
    now = datetime(2026, 1, 1, 0, 0, 10, tzinfo=EPOCH.tzinfo)
    assert measure(Fixed(None), METRIC, SUBJECT, now).error is True
    assert measure(Fixed(0.5), METRIC, SUBJECT, now).error is False


def test_record_fails_when_failures_exceed_the_limit() -> None:
    lenient = METRIC.model_copy(update={"count": 3, "failure_limit": 1})
    start = AnalysisStatus(step_index=0, revision="r2")
    once = record(start, [lenient], [sample("success-rate", False, 10)])
    assert once.phase == "Running"
    assert once.message == "success-rate 1/3"
    twice = record(once, [lenient], [sample("success-rate", False, 20)])
    assert twice.phase == "Failed"
    assert "success-rate" in twice.message


def analysed(failure_limit: int = 0) -> World:
    metric = METRIC.model_copy(update={"failure_limit": failure_limit})
    steps = [
        CanaryStep(set_weight=20),
        CanaryStep(analysis=Analysis(metrics=[metric])),
        CanaryStep(set_weight=60),
    ]
    world = World(spec=sample_spec(Rollout(canary=Canary(steps=steps))))
    world.ready["r1"] = True
    world.tick()
    world.desired = "r2"
    world.ready["r2"] = True
    return world


def measured(world: World, value: float) -> list[Measurement]:
    due = due_measurements(world.spec, world.status, world.now)
    return [measure(Fixed(value), m, SUBJECT, world.now) for m in due]


def test_analysis_step_measures_each_interval_and_passes() -> None:
    world = analysed()
    entered = world.tick()
    assert reasons(entered) == ["RolloutStarted", "WeightChanged", "AnalysisStarted"]
    assert entered.requeue_after == 10
    assert world.status.phase == Phase.PROGRESSING
    assert world.status.analysis is not None
    assert world.status.analysis.phase == "Running"
    assert world.status.message == (
        "canary r2 at 20%, step 2/3: analysis running (success-rate 0/2)"
    )
    assert due_measurements(world.spec, world.status, world.now) == []
    world.advance(10)
    first = world.tick(measurements=measured(world, 0.999))
    assert reasons(first) == []
    assert first.requeue_after == 10
    assert world.status.message.endswith("(success-rate 1/2)")
    world.advance(5)
    assert measured(world, 0.999) == []
    world.advance(5)
    passed = world.tick(measurements=measured(world, 0.999))
    assert reasons(passed) == ["AnalysisSucceeded", "WeightChanged", "RolloutCompleted"]
    assert world.status.stable_revision == "r2"
    assert world.status.analysis is not None
    assert world.status.analysis.phase == "Successful"


def test_failed_analysis_aborts_naming_the_metric() -> None:
    world = analysed()
    world.tick()
    world.advance(10)
    failed = world.tick(measurements=measured(world, 0.5))
    assert reasons(failed) == ["AnalysisFailed", "Aborted"]
    assert world.status.phase == Phase.ABORTED
    assert "success-rate" in (world.status.abort_reason or "")
    assert world.status.analysis is not None
    assert world.status.analysis.phase == "Failed"
    assert [(t.revision, t.weight) for t in world.status.traffic] == [("r1", 100)]
    assert due_measurements(world.spec, world.status, world.now) == []


def test_late_measurements_are_due_at_once_and_requeue_is_never_zero() -> None:
    world = analysed(failure_limit=1)
    world.tick()
    world.advance(300)
    assert [m.name for m in due_measurements(world.spec, world.status, world.now)] == [
        "success-rate"
    ]
    assert world.tick().requeue_after == 10


def test_nothing_is_due_while_held_or_outside_an_analysis_step() -> None:
    world = analysed()
    assert due_measurements(world.spec, world.status, world.now) == []
    world.tick()
    world.advance(60)
    held = world.spec.model_copy(update={"paused": True})
    assert due_measurements(held, world.status, world.now) == []
