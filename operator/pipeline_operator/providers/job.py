"""The job analysis provider: a Kubernetes Job run against the revisions, whose exit decides
(Argo Rollouts' job metric), e.g. the kit's evaluation image scoring both revisions on a
labelled set.

Each measurement is one Job, named after the analysis it belongs to (pipeline, metric,
revision, step, when the step began, the measurement's number), so a reconcile that runs
twice, or an operator restarted meanwhile, finds the Job it started instead of starting
another. The Job waits for both revisions' own graphs to be Ready; while it runs the
measurement is under way (looked at again within seconds, not counted); once it completed
the value is 1, once it failed 0, and the end of its log is the measurement's message.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

from pipeline_operator.api.v1alpha1 import GROUP, AnalysisMetric, JobMetric, parse_duration
from pipeline_operator.core import naming
from pipeline_operator.core.objects import condition
from pipeline_operator.core.planner.metadata import build_owner_reference
from pipeline_operator.core.planner.options import Owner
from pipeline_operator.core.rollout import AnalysisError, PendingError, Reading
from pipeline_operator.core.rollout.analysis import Subject

LABEL_METRIC = f"{GROUP}/metric"
LOG_LINES = 10
LOG_CHARS = 1024  # of the log's end, kept in the measurement's message (and so in status)
FINISHED_TTL_SECONDS = 86400  # a finished Job is kept a day for its logs, then collected


class JobClient(Protocol):
    """The Job calls the provider makes; each raises :class:`AnalysisError` with a message
    that names what failed."""

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Job, or None when there is none of that name."""
        ...

    def create_job(self, body: dict[str, Any]) -> None:
        """Create the Job (one of that name already there is no error)."""
        ...

    def job_log(self, namespace: str, name: str, lines: int) -> str:
        """The last ``lines`` of the log of the Job's latest pod."""
        ...


def job_name(metric: AnalysisMetric, subject: Subject) -> str:
    """The Job of one measurement: the same for a repeat of it, another for the next."""
    run = f"{subject.revision}/{subject.step}/{subject.started}/{subject.ordinal}"
    return naming.fit_name(subject.pipeline, metric.name, naming.short_hash(run, 8), limit=63)


def job_env(subject: Subject) -> dict[str, str]:
    """What every container of the Job is told of the rollout it measures."""
    return {
        "PIPELINE": subject.pipeline,
        "NAMESPACE": subject.namespace,
        "CANARY_REVISION": subject.revision,
        "STABLE_REVISION": subject.stable,
        "CANARY_URL": subject.urls.get(subject.revision, ""),
        "STABLE_URL": subject.urls.get(subject.stable, ""),
    }


def build_job(metric: AnalysisMetric, job: JobMetric, subject: Subject) -> dict[str, Any]:
    """The Job of one measurement: the metric's template, told of the rollout (``job_env``
    replaces variables of those names), owned by the pipeline."""
    template = copy.deepcopy(job.template)
    spec = template.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Never")
    env = job_env(subject)
    for container in spec["containers"]:
        kept = [e for e in container.get("env") or [] if e.get("name") not in env]
        container["env"] = [*kept, *({"name": k, "value": v} for k, v in env.items())]
    labels = {**naming.labels(subject.pipeline, subject.revision), LABEL_METRIC: metric.name}
    owner = Owner(name=subject.pipeline, namespace=subject.namespace, uid=subject.uid)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(metric, subject),
            "namespace": subject.namespace,
            "labels": labels,
            "ownerReferences": [build_owner_reference(owner)],
        },
        "spec": {
            "backoffLimit": job.backoff_limit,
            "activeDeadlineSeconds": int(parse_duration(job.active_deadline).total_seconds()),
            "ttlSecondsAfterFinished": FINISHED_TTL_SECONDS,
            "template": template,
        },
    }


def finished(job: dict[str, Any]) -> tuple[bool, str] | None:
    """(succeeded, why) once the Job has finished; None while it runs."""
    for kind, succeeded in (("Complete", True), ("Failed", False)):
        found = condition(job, kind)
        if found is not None and found.get("status") == "True":
            why = ": ".join(x for x in (found.get("reason"), found.get("message")) if x)
            return succeeded, why
    return None


def log_end(log: str) -> str:
    """The end of a log, at most ``LOG_CHARS``, on one line per line."""
    text = log.strip()
    return text if len(text) <= LOG_CHARS else "..." + text[-LOG_CHARS:]


class JobProvider:
    """Runs a job metric's Jobs through ``client``."""

    def __init__(self, client: JobClient) -> None:
        self.client = client

    def query(self, metric: AnalysisMetric, subject: Subject) -> Reading:
        job = metric.job
        if job is None:
            raise AnalysisError(f"metric {metric.name} has no job")
        waiting = [r for r in (subject.stable, subject.revision) if r and r not in subject.urls]
        if waiting:
            graphs = ", ".join(naming.revision_graph_name(subject.pipeline, r) for r in waiting)
            raise PendingError(f"waiting for the revision graph(s) {graphs} to be Ready")
        name = job_name(metric, subject)
        current = self.client.read_job(subject.namespace, name)
        if current is None:
            self.client.create_job(build_job(metric, job, subject))
            raise PendingError(f"job {name} started")
        outcome = finished(current)
        if outcome is None:
            raise PendingError(f"job {name} running")
        succeeded, why = outcome
        try:
            log = log_end(self.client.job_log(subject.namespace, name, LOG_LINES))
        except AnalysisError as err:
            log = f"(no log: {err})"
        if succeeded:
            return Reading(1.0, f"job {name} succeeded; log: {log}")
        return Reading(0.0, f"job {name} failed ({why}); log: {log}")
