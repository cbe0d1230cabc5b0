"""Canary analysis: providers, measurements, and the verdict over them (pure apart from the
provider call that :func:`measure` makes).

Each metric of an analysis step is measured ``count`` times, one ``interval`` apart, the first
one interval after the step began (so the canary has served traffic at its new weight). A
query that matches no series is exactly that (``noData``): not counted, not an error, measured
again an interval later (the progress deadline bounds the wait). A query that produces no
value otherwise (the provider unreachable, a bad query) is an error, retried an interval later
and not counted, unless more than ``consecutive_error_limit`` come in a row. A metric fails as
soon as more than ``failure_limit`` measurements failed and succeeds once all ``count`` are
taken; the step fails when any metric fails and succeeds when all succeed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

from pipeline_operator.api.success_condition import ConditionError, evaluate
from pipeline_operator.api.v1alpha1 import (
    AnalysisMetric,
    AnalysisStatus,
    InferencePipelineSpec,
    InferencePipelineStatus,
    Measurement,
    parse_duration,
)
from pipeline_operator.core.revisions import canary_active
from pipeline_operator.core.rollout.clock import parse, stamp
from pipeline_operator.core.rollout.steps import canary_steps

Verdict = Literal["Running", "Successful", "Failed"]
JOB_POLL = timedelta(seconds=5)
"""How soon a job metric's Job under way is looked at again."""


class AnalysisError(Exception):
    """A provider could not produce a value (unreachable, bad query)."""


class NoDataError(AnalysisError):
    """The query matched no series."""


class PendingError(NoDataError):
    """The value is on its way (a job metric's Job still running): asked again shortly."""


@dataclass(frozen=True)
class Reading:
    """A value with what the provider says of it (a Job's outcome and log)."""

    value: float
    detail: str


@dataclass(frozen=True)
class Subject:
    """What an analysis measures: the canary ``revision`` of ``pipeline`` (``stable`` serves
    the rest of the traffic). Queries name them as ``{{revision}}``, ``{{pipeline}}`` and
    ``{{stable}}``."""

    pipeline: str
    revision: str
    stable: str = ""
    namespace: str = ""  # the pipeline's: where a web metric's Secrets are read
    uid: str = ""  # the pipeline's: the owner of what a job metric creates
    step: int = 0  # the canary step (0-based) being analysed
    started: str = ""  # when that step began
    ordinal: int = 0  # values of the metric taken in this analysis before this measurement
    urls: Mapping[str, str] = field(default_factory=dict)
    """Revision -> its own graph's URL, for each revision whose graph is Ready."""


class AnalysisProvider(Protocol):
    """Where metric values come from, e.g. Prometheus."""

    def query(self, metric: AnalysisMetric, subject: Subject) -> float | Reading:
        """The metric's current value for ``subject``.

        Raises :class:`AnalysisError` when there is no value.
        """
        ...


def render_query(query: str, subject: Subject) -> str:
    """Substitute ``{{revision}}``, ``{{pipeline}}`` and ``{{stable}}`` in a metric query."""
    return (
        query.replace("{{revision}}", subject.revision)
        .replace("{{pipeline}}", subject.pipeline)
        .replace("{{stable}}", subject.stable)
    )


def measure(
    provider: AnalysisProvider,
    metric: AnalysisMetric,
    subject: Subject,
    now: datetime,
) -> Measurement:
    """Query one metric and judge the value by its success condition.

    A provider error or an invalid condition is a failed measurement, not an exception.
    """
    at = stamp(now)
    try:
        reading = provider.query(metric, subject)
    except NoDataError as error:
        return Measurement(
            metric=metric.name, success=False, no_data=True, message=str(error), at=at
        )
    except AnalysisError as error:
        return Measurement(metric=metric.name, success=False, error=True, message=str(error), at=at)
    value, detail = (
        (reading.value, reading.detail) if isinstance(reading, Reading) else (reading, "")
    )
    try:
        success = evaluate(metric.condition, value)
    except ConditionError as error:
        return Measurement(metric=metric.name, success=False, message=str(error), at=at)
    verb = "meets" if success else "fails"
    message = detail or f"result {value:g} {verb} {metric.condition}"
    return Measurement(metric=metric.name, value=value, success=success, message=message, at=at)


def metric_verdict(metric: AnalysisMetric, measurements: Sequence[Measurement]) -> Verdict:
    """Failed past the failure limit or the consecutive error limit; Successful once
    ``count`` values were measured; else Running."""
    mine = [m for m in measurements if m.metric == metric.name]
    if consecutive_errors(mine) > metric.consecutive_error_limit:
        return "Failed"
    if len(failures(mine)) > metric.failure_limit:
        return "Failed"
    return "Successful" if taken(mine) >= metric.count else "Running"


def counted(measurement: Measurement) -> bool:
    """Whether a measurement produced a value (errors and no-data are retried, not counted)."""
    return not measurement.error and not measurement.no_data


def taken(measurements: Sequence[Measurement]) -> int:
    """Measurements that produced a value."""
    return sum(counted(m) for m in measurements)


def failures(measurements: Sequence[Measurement]) -> list[Measurement]:
    """Measurements whose value failed the success condition (or could not be judged)."""
    return [m for m in measurements if counted(m) and not m.success]


def consecutive_errors(measurements: Sequence[Measurement]) -> int:
    """Errors in a row at the end of ``measurements`` (no-data results neither add to nor
    break the run)."""
    count = 0
    for m in reversed(measurements):
        if m.no_data:
            continue
        if not m.error:
            break
        count += 1
    return count


def record(
    analysis: AnalysisStatus, metrics: Sequence[AnalysisMetric], new: Iterable[Measurement]
) -> AnalysisStatus:
    """Add new measurements (ignoring repeats, unknown metrics and extras beyond ``count``)
    and re-judge the analysis."""
    measurements = list(analysis.measurements)
    by_name = {m.name: m for m in metrics}
    for one in new:
        metric = by_name.get(one.metric)
        if metric is None or any((m.metric, m.at) == (one.metric, one.at) for m in measurements):
            continue
        mine = [m for m in measurements if m.metric == one.metric]
        if taken(mine) >= metric.count:
            continue
        if one.no_data and mine and mine[-1].no_data:
            measurements.remove(mine[-1])  # the latest no-data result stands for the run
        measurements.append(one)
    verdicts = {m.name: metric_verdict(m, measurements) for m in metrics}
    failed = [name for name, v in verdicts.items() if v == "Failed"]
    if failed:
        phase: Verdict = "Failed"
        message = "; ".join(_failure(by_name[name], measurements) for name in failed)
    elif all(v == "Successful" for v in verdicts.values()):
        phase, message = "Successful", "all metrics passed"
    else:
        phase = "Running"
        message = ", ".join(_progress(m, measurements) for m in metrics)
    return analysis.model_copy(
        update={"measurements": measurements, "phase": phase, "message": message}
    )


def _progress(metric: AnalysisMetric, measurements: Sequence[Measurement]) -> str:
    mine = [m for m in measurements if m.metric == metric.name]
    out = f"{metric.name} {taken(mine)}/{metric.count}"
    if not mine or not mine[-1].no_data:
        return out
    waiting = "under way" if metric.job is not None else "no series yet"
    return f"{out} ({waiting}: {mine[-1].message})"


def _failure(metric: AnalysisMetric, measurements: Sequence[Measurement]) -> str:
    mine = [m for m in measurements if m.metric == metric.name]
    errors = consecutive_errors(mine)
    if errors > metric.consecutive_error_limit:
        return (
            f"metric {metric.name}: {errors} errors in a row (limit "
            f"{metric.consecutive_error_limit}): {mine[-1].message}"
        )
    failed = failures(mine)
    return (
        f"metric {metric.name} failed {len(failed)} of {metric.count} measurements "
        f"(failure limit {metric.failure_limit}): {failed[-1].message or 'unsuccessful'}"
    )


def next_due(metric: AnalysisMetric, analysis: AnalysisStatus, started: datetime) -> datetime:
    """When ``metric`` is to be measured next: one interval after its last measurement, or
    after the step began; a job under way is looked at again within ``JOB_POLL``."""
    mine = [m for m in analysis.measurements if m.metric == metric.name]
    last = parse(mine[-1].at) if mine else started
    interval = parse_duration(metric.interval)
    if metric.job is not None and mine and mine[-1].no_data:
        interval = min(interval, JOB_POLL)
    return last + interval


def runs_jobs(spec: InferencePipelineSpec) -> bool:
    """Whether an analysis step of the canary has a job metric (its Jobs reach each revision
    through a graph of the revision's own)."""
    return any(
        metric.job is not None
        for step in canary_steps(spec)
        if step.analysis is not None
        for metric in step.analysis.metrics
    )


def due_measurements(
    spec: InferencePipelineSpec, status: InferencePipelineStatus, now: datetime
) -> list[AnalysisMetric]:
    """Metrics of the current canary analysis step that are to be measured now.

    The operator calls this with the status it is about to pass to the engine, measures
    each metric for ``status.canary_revision`` and passes the results in
    ``Observations.measurements``. Nothing is due before the engine has entered the analysis
    step (``status.analysis`` names it), while ``spec.paused`` holds the rollout, or once a
    metric has its verdict.
    """
    index = status.current_step_index
    steps = canary_steps(spec)
    if (
        spec.rollout.strategy != "Canary"
        or spec.paused
        or not canary_active(status)
        or index is None
        or index >= len(steps)
        or status.step_started_at is None
    ):
        return []
    step = steps[index].analysis
    if step is None:
        return []
    analysis = status.analysis
    if analysis is None or (analysis.step_index, analysis.revision) != (
        index,
        status.canary_revision,
    ):
        return []
    started = parse(status.step_started_at)
    return [
        m
        for m in step.metrics
        if metric_verdict(m, analysis.measurements) == "Running"
        and now >= next_due(m, analysis, started)
    ]
