"""One level-triggered reconcile of one pipeline: observe, decide (pure), apply, report.

Everything is recomputed from the pipeline's spec and status and from the live children on
every call, so a lost event, a crash midway or a restart costs nothing but a repeat. The
status write is the commit point: children are applied before it, events posted after it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from pipeline_operator import commands, metrics, pods, refusals, snapshots
from pipeline_operator.api.v1alpha1 import (
    GROUP,
    ApplyError,
    CommandAck,
    Condition,
    InferencePipelineSpec,
    InferencePipelineStatus,
    Measurement,
    Phase,
    RouterStatus,
)
from pipeline_operator.drift import Drift, drift
from pipeline_operator.kube import Kube, RefusedError
from pipeline_operator.naming import graph_name, revision_of
from pipeline_operator.objects import controller_uid, merge_patch, ref
from pipeline_operator.observe import RouterRollout, readiness, ready_summary, served_traffic
from pipeline_operator.planner import Owner, PlanError, PlanOptions, plan, plan_revision
from pipeline_operator.prometheus import Access, providers
from pipeline_operator.rollout import (
    AnalysisError,
    AnalysisProvider,
    Decision,
    Observations,
    due_measurements,
    measure,
    step,
)
from pipeline_operator.rollout.analysis import Subject
from pipeline_operator.rollout.clock import parse, stamp
from pipeline_operator.rollout.steps import canary_steps
from pipeline_operator.settings import OperatorSettings
from pipeline_operator.state import active_revisions
from pipeline_operator.tracing import tracer
from pipeline_operator.validation import validate

log = logging.getLogger(__name__)

RETIRED_AT = f"{GROUP}/retired-at"
PODS_POLL = 10.0
"""Seconds between looks while a stage is not Ready: its pods change without an event here."""


def retired_at(obj: dict[str, Any]) -> datetime | None:
    """When a child was retired (it stays a while so in-flight routing can drain)."""
    value = (obj["metadata"].get("annotations") or {}).get(RETIRED_AT)
    try:
        return parse(value) if value else None
    except ValueError:
        return None  # unreadable: retire it afresh


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Applied:
    """What one convergence did: refusals, graphs rewritten, and when to look again."""

    errors: list[ApplyError] = field(default_factory=list)
    graphs_changed: set[str] = field(default_factory=set)
    requeue_after: float | None = None

    @property
    def refused(self) -> dict[str, str]:
        return {e.name: e.message for e in self.errors}

    def wait(self, seconds: float) -> None:
        self.requeue_after = (
            seconds if self.requeue_after is None else min(self.requeue_after, seconds)
        )


@dataclass(frozen=True)
class Routing:
    """What the pipeline's routers serve, as observed at the start of a reconcile."""

    rollouts: dict[str, RouterRollout]
    served: dict[str, int] | None
    preview_served: str | None
    waiting: str

    @classmethod
    def observe(
        cls,
        graphs: dict[str, tuple[dict[str, int] | None, RouterRollout | None]],
        main: str,
        preview: str,
    ) -> Routing:
        rollouts = {g: r for g, (_, r) in graphs.items() if r is not None}
        served = graphs.get(main, (None, None))[0]
        previewed = graphs.get(preview, (None, None))[0] or {}
        waiting = "; ".join(f"{g}: {r.message}" for g, r in rollouts.items() if not r.rolled_out)
        return cls(
            rollouts=rollouts,
            served=served if main in graphs else {},
            preview_served=next(iter(previewed), None),
            waiting=waiting,
        )

    def report(self, changed: set[str]) -> list[RouterStatus]:
        """Status of each router; one whose graph this reconcile rewrote is rolling out."""
        return [
            RouterStatus(graph=graph, rolled_out=False, message="graph changed; rolling out")
            if graph in changed
            else RouterStatus(graph=graph, rolled_out=r.rolled_out, message=r.message)
            for graph, r in sorted(self.rollouts.items())
        ]


@dataclass
class Reconciler:
    """Reconciles pipelines through ``kube``; the decisions are the engine's and planner's."""

    kube: Kube
    settings: OperatorSettings
    clock: Callable[[], datetime] = utcnow
    providers: Callable[[str], AnalysisProvider] | None = None
    """Analysis provider per address (default: Prometheus, with the settings' access)."""
    options: PlanOptions = field(init=False)
    provider_for: Callable[[str], AnalysisProvider] = field(init=False)

    def __post_init__(self) -> None:
        settings = self.settings
        self.options = settings.plan_options()
        access = Access(
            bearer_token_file=settings.prometheus_bearer_token_file,
            username=settings.prometheus_username,
            password_file=settings.prometheus_password_file,
            ca_file=settings.prometheus_ca_file,
        )
        self.provider_for = self.providers or providers(settings.prometheus_address, access)

    def reconcile(self, namespace: str, name: str) -> float | None:
        """Bring one pipeline a step closer to its spec; return seconds until a requeue."""
        started = time.perf_counter()
        # The span records an escaping exception and marks itself as failed.
        with tracer.start_as_current_span(
            "reconcile", attributes={"k8s.namespace.name": namespace, "pipeline.name": name}
        ):
            try:
                requeue = self._reconcile(namespace, name)
            except Exception as err:
                metrics.RECONCILES.labels(result="error").inc()
                metrics.RECONCILE_ERRORS.labels(reason=type(err).__name__).inc()
                raise
            finally:
                metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
            metrics.RECONCILES.labels(result="ok").inc()
            return requeue

    def _reconcile(self, namespace: str, name: str) -> float | None:
        pipeline = self.kube.get_pipeline(namespace, name)
        if pipeline is None or pipeline["metadata"].get("deletionTimestamp"):
            metrics.forget_pipeline(namespace, name)
            return None
        meta = pipeline["metadata"]
        owner = Owner(name=name, namespace=namespace, uid=meta["uid"])
        old_status = dict(pipeline.get("status") or {})
        status = InferencePipelineStatus.model_validate(old_status)
        try:
            spec = InferencePipelineSpec.model_validate(pipeline["spec"])
        except ValidationError as err:
            self._report_unreadable(pipeline, status, err)
            return None

        problems = validate(spec)
        invalid = "; ".join(problems) or None
        desired = revision_of(spec)
        # Only what this pipeline controls: a same-named pipeline recreated, or another
        # pipeline whose names hash alike, is never adopted or pruned.
        children = [
            c for c in self.kube.list_children(namespace, name) if controller_uid(c) == owner.uid
        ]
        snaps = snapshots.parse(self.kube.list_revisions(namespace, name))
        if invalid is None and desired not in snaps:
            # Nothing of a revision is stored before it is known to plan at all.
            try:
                plan_revision(owner, spec, desired, self.options)
            except PlanError as err:
                self._report_invalid(pipeline, status, "PlanFailed", str(err))
                return None
            snaps |= self._store_snapshot(owner, desired, spec, snaps)
        lost = [rev for rev in active_revisions(status) if rev not in snaps]
        for revision in lost:
            rebuilt = snapshots.recover(children, revision)
            if rebuilt is not None:
                snaps |= self._store_snapshot(owner, revision, rebuilt, snaps)
                message = f"spec snapshot of revision {revision} rebuilt from its children"
                log.warning("%s/%s: %s", namespace, name, message)
                self.kube.post_event(pipeline, "Warning", "SnapshotRebuilt", message)
        missing = [rev for rev in lost if rev not in snaps]
        if missing:
            self._report_invalid(pipeline, status, "SnapshotMissing", snapshots.missing(missing))
            return None

        specs = {rev: snap.spec for rev, snap in snaps.items()}
        if invalid is None:
            specs[desired] = spec
        services = [c for c in children if c["kind"] == "InferenceService"]
        running = pods.by_component(self.kube.list_pods(namespace, name))
        refused = refusals.refused_services(status)
        observed = {rev: specs[rev] for rev in {*active_revisions(status), desired} if rev in specs}
        seen = readiness(name, observed, services, running, refused)
        routing = self._observe_routers(namespace, name, children)

        now = self.clock()
        command_value = commands.pending(meta.get("annotations"), status)
        command = None
        if command_value is not None:
            try:
                command = commands.parse(command_value)
            except commands.CommandError as err:
                self._reject_command(pipeline, status, command_value, str(err), now)
                return 0.0
        measurements = self._measure(spec, status, name, now)
        decision = step(
            spec,
            status,
            Observations(
                now=now,
                desired_revision=desired,
                ready=seen.ready,
                reasons=seen.reasons,
                command=command,
                measurements=measurements,
                invalid=invalid,
                served=routing.served,
                preview_served=routing.preview_served,
                routing=routing.waiting,
                replicas=seen.replicas,
            ),
            generation=meta.get("generation"),
        )

        new_status = decision.status
        serving = active_revisions(new_status)
        try:
            wanted = plan(owner, {rev: specs[rev] for rev in serving}, new_status, self.options)
        except PlanError as err:
            self._report_invalid(pipeline, status, "PlanFailed", str(err))
            return None
        applied = self._converge(wanted, children, now, routing.served is not None)

        final = readiness(
            name, {rev: specs[rev] for rev in serving}, services, running, applied.refused
        )
        if not all(final.ready.values()):
            applied.wait(PODS_POLL)  # pods come up or stay Pending without an event of ours
        new_status = self._with_observed(new_status, final.revisions, serving, children, name)
        new_status = new_status.model_copy(
            update={"routers": routing.report(changed=applied.graphs_changed)}
        )
        new_status, refusal = refusals.report(new_status, applied.errors, stamp(now))
        self._prune_snapshots(namespace, snaps, serving)
        self._write_status(pipeline, old_status, new_status)
        self._post(pipeline, decision)
        if refusal is not None:
            log.warning("%s/%s: %s", namespace, name, refusal)
            self.kube.post_event(pipeline, "Warning", refusals.REASON, refusal)
        unschedulable = pods.report(status.revisions, new_status.revisions)
        if unschedulable is not None:
            log.warning("%s/%s: %s", namespace, name, unschedulable)
            self.kube.post_event(pipeline, "Warning", pods.REASON, unschedulable)
        self._export(namespace, name, new_status)
        waits = [w for w in (decision.requeue_after, applied.requeue_after) if w is not None]
        return min(waits, default=None)

    # -- observe -----------------------------------------------------------------------------

    def _measure(
        self, spec: InferencePipelineSpec, status: InferencePipelineStatus, name: str, now: datetime
    ) -> list[Measurement]:
        due = due_measurements(spec, status, now)
        if not due or status.canary_revision is None or status.current_step_index is None:
            return []
        analysis = canary_steps(spec)[status.current_step_index].analysis
        address = (analysis.address if analysis else None) or self.settings.prometheus_address
        if address is None:
            message = "no Prometheus address: set the analysis step's address or the operator's"
            at = stamp(now)
            return [Measurement(metric=m.name, success=False, message=message, at=at) for m in due]
        try:
            provider = self.provider_for(address)
        except AnalysisError as err:
            return [
                Measurement(metric=m.name, success=False, message=str(err), at=stamp(now))
                for m in due
            ]
        subject = Subject(name, status.canary_revision, status.stable_revision or "")
        return [measure(provider, metric, subject, now) for metric in due]

    def _observe_routers(
        self, namespace: str, name: str, children: list[dict[str, Any]]
    ) -> Routing:
        graphs = {c["metadata"]["name"]: c for c in children if c["kind"] == "InferenceGraph"}
        main, preview = graph_name(name), graph_name(name, preview=True)
        wanted = [g for g in (main, preview) if g in graphs]
        deployments = self.kube.list_routers(namespace, wanted) if wanted else {}
        return Routing.observe(
            {g: served_traffic(graphs[g], deployments.get(g)) for g in wanted}, main, preview
        )

    # -- act ---------------------------------------------------------------------------------

    def _converge(
        self,
        wanted: list[dict[str, Any]],
        children: list[dict[str, Any]],
        now: datetime,
        routed: bool,
    ) -> Applied:
        """Apply what differs, then retire children no longer wanted.

        A child the apiserver refuses is recorded and the others are still applied. Graphs
        no longer wanted go at once. An InferenceService the graph stopped routing to is
        retired only once the router serves the graph without it (``routed``, and the graph
        unchanged by this reconcile), then deleted ``drain_seconds`` later, so requests that
        router pods already accepted can finish.
        """
        live = {(c["kind"], c["metadata"]["name"]): c for c in children}
        out = Applied()
        for obj in wanted:
            current = live.get((obj["kind"], obj["metadata"]["name"]))
            try:
                wrote = self._sync(obj, current)
            except RefusedError as err:
                meta = obj["metadata"]
                error = ApplyError(kind=obj["kind"], name=meta["name"], message=err.message)
                out.errors.append(error)
                continue
            if wrote and obj["kind"] == "InferenceGraph":
                out.graphs_changed.add(obj["metadata"]["name"])
            if current is not None and retired_at(current) is not None:
                log.info("back in service: %s", ref(current))
                self.kube.annotate(current, RETIRED_AT, None)
        keep = {(o["kind"], o["metadata"]["name"]) for o in wanted}
        settled = routed and not out.graphs_changed
        drain = self.settings.drain_seconds
        for obj in sorted(
            (c for key, c in live.items() if key not in keep),
            key=lambda c: c["kind"] != "InferenceGraph",
        ):
            retired = retired_at(obj)
            if obj["kind"] == "InferenceService":
                if retired is None and not settled:
                    continue  # still routed to until the router has rolled out
                if retired is None and drain > 0:
                    log.info("retiring %s (deleted in %.0fs)", ref(obj), drain)
                    self.kube.annotate(obj, RETIRED_AT, stamp(now))
                    retired = now
                wait = (retired - now).total_seconds() + drain if retired else 0.0
                if wait > 0:
                    out.wait(wait)
                    continue
            log.info("deleting %s", ref(obj))
            self.kube.delete(obj)
        return out

    def _sync(self, obj: dict[str, Any], current: dict[str, Any] | None) -> bool:
        """Bring one child to the plan (see :mod:`~pipeline_operator.drift`); True if written."""
        if current is None:
            log.info("creating %s", ref(obj))
            self.kube.apply(obj)
            return True
        change = drift(obj, current, self.settings.field_manager)
        if change.remove:
            log.info("removing %s from %s", ", ".join(change.remove), ref(obj))
            self.kube.remove_fields(current, change.remove)
        if change.reapply:
            log.info("applying %s", ref(obj))
            self.kube.apply(obj)
        return change != Drift()

    def _store_snapshot(
        self,
        owner: Owner,
        revision: str,
        spec: InferencePipelineSpec,
        snaps: dict[str, snapshots.Snapshot],
    ) -> dict[str, snapshots.Snapshot]:
        body = snapshots.build(owner, revision, spec, snapshots.next_number(snaps))
        self.kube.create_revision(body)  # an existing one has the same name and spec
        return snapshots.parse([body])

    def _prune_snapshots(
        self, namespace: str, snaps: dict[str, snapshots.Snapshot], serving: list[str]
    ) -> None:
        for snap in snapshots.expired(snaps, serving, self.settings.revision_history_limit):
            self.kube.delete_revision(namespace, snap.name)

    def _with_observed(
        self,
        status: InferencePipelineStatus,
        revisions: list[Any],
        serving: list[str],
        children: list[dict[str, Any]],
        name: str,
    ) -> InferencePipelineStatus:
        graphs = {c["metadata"]["name"]: c for c in children if c["kind"] == "InferenceGraph"}
        main = (graphs.get(graph_name(name)) or {}).get("status") or {}
        preview = (graphs.get(graph_name(name, preview=True)) or {}).get("status") or {}
        return status.model_copy(
            update={
                "revisions": revisions,
                "ready": ready_summary(revisions, serving),
                "url": main.get("url"),
                "preview_url": preview.get("url") if status.canary_revision else None,
            }
        )

    def _write_status(
        self,
        pipeline: dict[str, Any],
        old: dict[str, Any],
        new: InferencePipelineStatus,
    ) -> None:
        body = new.model_dump(by_alias=True, mode="json", exclude_none=True)
        patch = merge_patch(old, body)
        if patch:
            meta = pipeline["metadata"]
            self.kube.patch_pipeline_status(
                meta["namespace"], meta["name"], patch, meta.get("resourceVersion")
            )

    def _post(self, pipeline: dict[str, Any], decision: Decision) -> None:
        for event in decision.events:
            log.info("%s %s: %s", pipeline["metadata"]["name"], event.reason, event.message)
            self.kube.post_event(pipeline, event.type, event.reason, event.message)

    def _export(self, namespace: str, name: str, status: InferencePipelineStatus) -> None:
        traffic = {t.revision: t.weight for t in status.traffic}
        phase = str(status.phase) if status.phase else None
        metrics.export_pipeline(namespace, name, status.current_step_index, traffic, phase)

    # -- reports without the engine ----------------------------------------------------------

    def _report_unreadable(
        self, pipeline: dict[str, Any], status: InferencePipelineStatus, err: ValidationError
    ) -> None:
        message = "; ".join(
            f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        self._report_invalid(pipeline, status, "InvalidSpec", message)

    def _report_invalid(
        self, pipeline: dict[str, Any], status: InferencePipelineStatus, reason: str, message: str
    ) -> None:
        """Degraded with a Ready=False condition and a Warning Event; a pending command is
        rejected with the same reason. Nothing else changes."""
        now = stamp(self.clock())
        value = commands.pending(pipeline["metadata"].get("annotations"), status)
        update: dict[str, Any] = {}
        if value is not None:
            update["last_command"] = CommandAck(
                command=value, result="Rejected", message=message, at=now
            )
        if status.message != message:
            ready = Condition(
                type="Ready",
                status="False",
                reason=reason,
                message=message,
                last_transition_time=now,
            )
            others = [c for c in status.conditions if c.type != "Ready"]
            update |= {"phase": Phase.DEGRADED, "message": message, "conditions": [*others, ready]}
        if not update:
            return
        old = dict(pipeline.get("status") or {})
        self._write_status(pipeline, old, status.model_copy(update=update))
        if status.message != message:
            self.kube.post_event(pipeline, "Warning", reason, message)
        if value is not None:
            self.kube.post_event(pipeline, "Warning", "CommandRejected", message)

    def _reject_command(
        self,
        pipeline: dict[str, Any],
        status: InferencePipelineStatus,
        value: str,
        message: str,
        now: datetime,
    ) -> None:
        ack = CommandAck(command=value, result="Rejected", message=message, at=stamp(now))
        self._write_status(
            pipeline,
            dict(pipeline.get("status") or {}),
            status.model_copy(update={"last_command": ack}),
        )
        self.kube.post_event(pipeline, "Warning", "CommandRejected", message)
