"""The job analysis provider: one Job per measurement, its outcome and log as the value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline_operator.api.v1alpha1 import AnalysisMetric, AnalysisStatus, Measurement
from pipeline_operator.core import naming
from pipeline_operator.core.rollout import AnalysisError, PendingError
from pipeline_operator.core.rollout.analysis import Subject, measure, next_due, record
from pipeline_operator.providers.job import JobProvider, build_job, job_name

NOW = datetime(2026, 1, 1, tzinfo=UTC)
URLS = {"r1": "http://clf-r1.ml.svc", "r2": "http://clf-r2.ml.svc"}
SUBJECT = Subject(
    "clf", "r2", "r1", "ml", uid="uid-1", step=1, started="2026-01-01T00:00:00Z", urls=URLS
)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def metric(**job: Any) -> AnalysisMetric:
    template = {
        "spec": {
            "containers": [
                {
                    "name": "evaluate",
                    "image": "registry.local/evaluation:1",
                    "args": ["--labelled", "/data/set.jsonl"],
                    "env": [
                        {"name": "STABLE_URL", "value": "stale"},
                        {"name": "KEEP", "value": "1"},
                    ],
                }
            ]
        }
    }
    return AnalysisMetric.model_validate(
        {"name": "accuracy", "count": 1, "job": {"template": template, **job}}
    )


@dataclass
class Jobs:
    """An in-memory JobClient: the Jobs created, their conditions set by the test."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: str = ""
    log_error: str | None = None
    created: int = 0

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.jobs.get(f"{namespace}/{name}")

    def create_job(self, body: dict[str, Any]) -> None:
        self.created += 1
        self.jobs[f"{body['metadata']['namespace']}/{body['metadata']['name']}"] = body

    def job_log(self, namespace: str, name: str, lines: int) -> str:
        if self.log_error is not None:
            raise AnalysisError(self.log_error)
        return "\n".join(self.log.splitlines()[-lines:])

    def finish(self, kind: str, reason: str = "", message: str = "") -> None:
        (job,) = self.jobs.values()
        cond = {"type": kind, "status": "True", "reason": reason, "message": message}
        job["status"] = {"conditions": [cond]}


def test_the_job_waits_for_both_revision_graphs() -> None:
    jobs = Jobs()
    only_canary = replace(SUBJECT, urls={"r2": URLS["r2"]})
    with pytest.raises(PendingError, match=naming.revision_graph_name("clf", "r1")):
        JobProvider(jobs).query(metric(), only_canary)
    assert jobs.created == 0


def test_a_measurement_starts_one_job_and_is_under_way_until_it_finishes() -> None:
    jobs, m = Jobs(), metric()
    with pytest.raises(PendingError, match="started"):
        JobProvider(jobs).query(m, SUBJECT)
    for _ in range(2):  # a reconcile run twice, or after a restart, finds the same Job
        with pytest.raises(PendingError, match="running"):
            JobProvider(jobs).query(m, SUBJECT)
    assert jobs.created == 1


def test_a_completed_job_passes_and_its_log_is_the_message() -> None:
    jobs, m = Jobs(log="\n".join(f"line {i}" for i in range(30)) + '\n{"passed": true}'), metric()
    jobs.create_job(build_job(m, m.job, SUBJECT))  # type: ignore[arg-type]
    jobs.finish("Complete")
    measured = measure(JobProvider(jobs), m, SUBJECT, NOW)
    assert measured.success and measured.value == 1.0
    assert measured.message.startswith(f"job {job_name(m, SUBJECT)} succeeded; log: ")
    assert measured.message.endswith('{"passed": true}')
    assert "line 20" not in measured.message  # only the last lines are kept


def test_a_failed_job_fails_naming_why_with_its_log() -> None:
    jobs, m = Jobs(log='{"passed": false, "failed": ["agreement 0.5 < 0.95"]}'), metric()
    jobs.create_job(build_job(m, m.job, SUBJECT))  # type: ignore[arg-type]
    jobs.finish("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    measured = measure(JobProvider(jobs), m, SUBJECT, NOW)
    assert not measured.success and measured.value == 0.0 and not measured.error
    assert "failed (BackoffLimitExceeded: Job has reached" in measured.message
    assert "agreement 0.5 < 0.95" in measured.message


def test_a_log_that_cannot_be_read_does_not_hide_the_outcome() -> None:
    jobs, m = Jobs(log_error="refused (403): pods/log is forbidden"), metric()
    jobs.create_job(build_job(m, m.job, SUBJECT))  # type: ignore[arg-type]
    jobs.finish("Complete")
    measured = measure(JobProvider(jobs), m, SUBJECT, NOW)
    assert measured.success
    assert "(no log: refused (403): pods/log is forbidden)" in measured.message


def test_a_long_log_is_cut_to_its_end() -> None:
    jobs, m = Jobs(log="x" * 5000 + "END"), metric()
    jobs.create_job(build_job(m, m.job, SUBJECT))  # type: ignore[arg-type]
    jobs.finish("Complete")
    message = measure(JobProvider(jobs), m, SUBJECT, NOW).message
    assert message.endswith("xEND") and len(message) < 1200


def test_the_job_is_told_of_the_rollout_and_owned_by_the_pipeline() -> None:
    m = metric(backoffLimit=2, activeDeadline="90s")
    job = build_job(m, m.job, SUBJECT)  # type: ignore[arg-type]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "KEEP": "1",
        "PIPELINE": "clf",
        "NAMESPACE": "ml",
        "CANARY_REVISION": "r2",
        "STABLE_REVISION": "r1",
        "CANARY_URL": URLS["r2"],
        "STABLE_URL": URLS["r1"],
    }
    assert container["args"] == ["--labelled", "/data/set.jsonl"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 2
    assert job["spec"]["activeDeadlineSeconds"] == 90
    assert job["metadata"]["namespace"] == "ml"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    labels = job["metadata"]["labels"]
    assert labels[naming.LABEL_PIPELINE] == "clf" and labels[naming.LABEL_REVISION] == "r2"
    assert m.job is not None and "restartPolicy" not in m.job.template["spec"]  # not mutated


def test_a_template_restart_policy_is_kept() -> None:
    m = metric()
    assert m.job is not None
    m.job.template["spec"]["restartPolicy"] = "OnFailure"
    job = build_job(m, m.job, SUBJECT)
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"


def test_each_measurement_has_a_job_of_its_own_and_a_repeat_the_same() -> None:
    m = metric()
    names = {
        job_name(m, s)
        for s in (
            SUBJECT,
            replace(SUBJECT, ordinal=1),
            replace(SUBJECT, step=3),
            replace(SUBJECT, started="2026-01-01T00:05:00Z"),
            replace(SUBJECT, revision="r3"),
        )
    }
    assert len(names) == 5
    assert job_name(m, SUBJECT) == job_name(m, replace(SUBJECT, urls={}))


def test_a_long_pipeline_name_still_gives_a_job_name_kubernetes_takes() -> None:
    name = job_name(metric(), replace(SUBJECT, pipeline="p" * 120))
    assert len(name) <= 63 and DNS_LABEL.match(name)


def test_a_job_under_way_is_looked_at_again_within_seconds() -> None:
    m = metric().model_copy(update={"interval": "5m"})
    pending = Measurement(metric="accuracy", success=False, no_data=True, at="2026-01-01T00:00:00Z")
    analysis = record(AnalysisStatus(step_index=1, revision="r2", phase="Running"), [m], [pending])
    assert next_due(m, analysis, NOW) == NOW + timedelta(seconds=5)
    assert "accuracy 0/1 (under way: " in analysis.message
    done = Measurement(metric="accuracy", value=1, success=True, at="2026-01-01T00:00:10Z")
    assert next_due(m, record(analysis, [m], [done]), NOW) == NOW + timedelta(seconds=310)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"template": {"spec": {}}}, "template.spec.containers: at least one container"),
        ({"template": {"spec": {"containers": [{"name": "a"}]}}}, "containers[0].image"),
        ({"template": {"spec": {"containers": [{"image": "i:1"}]}}}, "containers[0].name"),
    ],
)
def test_a_template_without_a_runnable_container_is_refused(body: dict, words: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(words)):
        AnalysisMetric.model_validate({"name": "m", "job": body})


def test_a_job_metric_has_no_success_condition_and_the_others_need_one() -> None:
    job = metric().model_dump(by_alias=True, exclude_none=True)
    with pytest.raises(ValidationError, match="a job metric's Job decides"):
        AnalysisMetric.model_validate({**job, "successCondition": "result == 1"})
    with pytest.raises(ValidationError, match="query and web metrics need a successCondition"):
        AnalysisMetric.model_validate({"name": "m", "query": "up"})
    with pytest.raises(ValidationError, match="exactly one of query"):
        AnalysisMetric.model_validate({**job, "query": "up"})
