"""One level-triggered reconcile of one pipeline: observe, decide (pure), act.

Everything is recomputed from the pipeline's spec and status and from the live children on
every call, so a lost event, a crash midway or a restart costs nothing but a repeat. A
reconcile reads its pipeline's :class:`~pipeline_operator.k8s.cache.World` (what the watches
hold, overlaid with the operator's own writes) and sends no read of its own; what each write
returns is recorded there for the next one. The status write is the commit point: children
are applied before it, events posted after it.

``observe`` and ``decide`` only compute and run on the event loop; analysis queries run in
one executor and API writes in another, each of an explicit size. At most as many reconciles
as there are API workers run at once, each reading its view once it has a worker, so none
acts on a view that aged in a queue; analysis queries are made before taking a worker, so a
slow Prometheus never holds up the writes of other pipelines.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from pipeline_operator.api import command_annotation
from pipeline_operator.api.v1alpha1 import (
    GROUP,
    AnalysisMetric,
    ApplyError,
    CommandAck,
    Condition,
    InferencePipelineSpec,
    InferencePipelineStatus,
    Measurement,
    Phase,
    RouterStatus,
    Webhook,
    WebhookCall,
)
from pipeline_operator.api.validation import lint, unreadable, validate
from pipeline_operator.controller.gateways import GatewaySupports
from pipeline_operator.core.naming import graph_name, long_hosts
from pipeline_operator.core.objects import controller_uid, merge_patch, ref
from pipeline_operator.core.observe import pods, refusals, snapshots
from pipeline_operator.core.observe.drift import Drift, drift
from pipeline_operator.core.observe.gateways import (
    GatewayKey,
    gateway_keys,
    mirror_steps,
    unsupported_mirrors,
)
from pipeline_operator.core.observe.readiness import Readiness, readiness, ready_summary
from pipeline_operator.core.observe.routing import (
    RouterRollout,
    revision_urls,
    route_served,
    served_traffic,
)
from pipeline_operator.core.planner import (
    Owner,
    PlanError,
    PlanOptions,
    capacity,
    plan,
    plan_revision,
)
from pipeline_operator.core.planner.route import MIRRORING_KIND, ROUTE_KIND
from pipeline_operator.core.revisions import active_revisions
from pipeline_operator.core.rollout import (
    AnalysisError,
    AnalysisProvider,
    Command,
    Decision,
    Observations,
    due_measurements,
    gates,
    measure,
    step,
)
from pipeline_operator.core.rollout.analysis import Subject, runs_jobs, taken
from pipeline_operator.core.rollout.clock import parse, stamp
from pipeline_operator.core.rollout.gates import ROLLOUT_ENDED, due_webhooks
from pipeline_operator.core.rollout.model import GateKey
from pipeline_operator.core.rollout.steps import canary_steps
from pipeline_operator.k8s.cache import OwnWrites, World, key_of
from pipeline_operator.k8s.client import Kube, RefusedError
from pipeline_operator.providers.job import JobProvider
from pipeline_operator.providers.notify import Notifier, transition
from pipeline_operator.providers.prometheus import Access, providers
from pipeline_operator.providers.web import WebProvider
from pipeline_operator.providers.webhooks import WebhookCaller, webhook_body
from pipeline_operator.settings import OperatorSettings
from pipeline_operator.telemetry import metrics
from pipeline_operator.telemetry.tracing import tracer

log = logging.getLogger(__name__)

RETIRED_AT = f"{GROUP}/retired-at"
T = TypeVar("T")


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
    mirror_served: int = 0

    @classmethod
    def observe(
        cls,
        graphs: dict[str, tuple[dict[str, int] | None, RouterRollout | None]],
        main: str,
        preview: str,
        route: tuple[str, tuple[dict[str, int] | None, int, RouterRollout]] | None = None,
    ) -> Routing:
        """From the main and preview graphs' routers, or the HTTPRoute (``route``: its
        name and :func:`route_served`) where the pipeline routes through a Gateway."""
        rollouts = {g: r for g, (_, r) in graphs.items() if r is not None}
        served = graphs.get(main, (None, None))[0] if main in graphs else {}
        mirror = 0
        if route is not None:
            name, (served, mirror, rollout) = route
            rollouts[f"HTTPRoute {name}"] = rollout
        previewed = graphs.get(preview, (None, None))[0] or {}
        waiting = "; ".join(f"{g}: {r.message}" for g, r in rollouts.items() if not r.rolled_out)
        return cls(
            rollouts=rollouts,
            served=served,
            preview_served=next(iter(previewed), None),
            waiting=waiting,
            mirror_served=mirror,
        )

    def report(self, changed: set[str]) -> list[RouterStatus]:
        """Status of each router; one whose graph this reconcile rewrote is rolling out."""
        return [
            RouterStatus(graph=graph, rolled_out=False, message="graph changed; rolling out")
            if graph in changed
            else RouterStatus(graph=graph, rolled_out=r.rolled_out, message=r.message)
            for graph, r in sorted(self.rollouts.items())
        ]


# -- what each phase hands to the next ------------------------------------------------------


@dataclass
class Basis:
    """What every outcome of a reconcile starts from, and the snapshots to store first."""

    world: World
    pipeline: dict[str, Any]
    owner: Owner
    status: InferencePipelineStatus
    now: datetime
    store: list[dict[str, Any]] = field(default_factory=list)
    """ControllerRevisions to create before anything else is applied."""
    rebuilt: list[str] = field(default_factory=list)
    """Revisions among those whose snapshot was rebuilt from their children."""


@dataclass(frozen=True)
class Invalid:
    """The pipeline cannot be reconciled: it is reported Degraded, nothing else changes."""

    reason: str
    message: str


@dataclass(frozen=True)
class BadCommand:
    """The command annotation holds no known command: it is rejected, and the reconcile
    starts over."""

    value: str
    message: str


@dataclass(frozen=True)
class Stop:
    basis: Basis
    why: Invalid | BadCommand


@dataclass(frozen=True)
class Observed:
    """The pipeline and its children as the engine and the planner take them."""

    basis: Basis
    spec: InferencePipelineSpec
    invalid: str | None
    desired: str
    children: list[dict[str, Any]]
    snaps: dict[str, snapshots.Snapshot]
    specs: dict[str, InferencePipelineSpec]
    services: list[dict[str, Any]]
    running: dict[tuple[str, str], pods.Pods]
    readiness: Readiness
    routing: Routing
    command: Command | None
    due: list[AnalysisMetric]
    """Analysis metrics to measure now."""
    hooks: dict[GateKey, list[Webhook]]
    """Webhooks of the gates the canary waits on, to call now."""
    gateways_due: list[GatewayKey] = field(default_factory=list)
    """Gateways whose support the spec depends on and that are to be read first."""
    warnings: list[str] = field(default_factory=list)
    """What the operator could not check of the spec (besides the lint warnings)."""


@dataclass(frozen=True)
class Measured:
    """What a reconcile asked of the world outside before deciding: analysis values and
    webhook answers."""

    measurements: list[Measurement] = field(default_factory=list)
    calls: dict[GateKey, list[WebhookCall]] = field(default_factory=dict)


@dataclass(frozen=True)
class Decided:
    seen: Observed
    decision: Decision
    serving: list[str]
    wanted: list[dict[str, Any]]


@dataclass(frozen=True)
class KubeJobs:
    """A job metric's calls to the API; a refusal is an analysis error that names it."""

    kube: Kube

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.kube.read_job(namespace, name)
        except RefusedError as err:
            raise AnalysisError(
                f"reading Job {namespace}/{name}: refused ({err.status}): {err}"
            ) from None

    def create_job(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        try:
            self.kube.create_job(body)
        except RefusedError as err:
            where = f"Job {meta['namespace']}/{meta['name']}"
            raise AnalysisError(f"creating {where}: refused ({err.status}): {err}") from None

    def job_log(self, namespace: str, name: str, lines: int) -> str:
        try:
            return self.kube.job_log(namespace, name, lines)
        except RefusedError as err:
            raise AnalysisError(f"refused ({err.status}): {err}") from None


@dataclass
class Reconciler:
    """Reconciles pipelines through ``kube``; the decisions are the engine's and planner's."""

    kube: Kube
    settings: OperatorSettings
    clock: Callable[[], datetime] = utcnow
    providers: Callable[[str], AnalysisProvider] | None = None
    """Analysis provider per address (default: Prometheus, with the settings' access)."""
    writes: OwnWrites = field(default_factory=OwnWrites)
    api_pool: Executor | None = None
    """Where writes run (None: the event loop's default executor)."""
    analysis_pool: Executor | None = None
    """Where analysis queries run (None: the event loop's default executor)."""
    options: PlanOptions = field(init=False)
    provider_for: Callable[[str], AnalysisProvider] = field(init=False)
    web: AnalysisProvider = field(init=False)
    jobs: AnalysisProvider = field(init=False)
    notifier: Notifier = field(init=False)
    webhooks: WebhookCaller = field(init=False)
    gateways: GatewaySupports = field(init=False)
    slots: asyncio.Semaphore = field(init=False)
    """Reconciles past their analysis queries, at most one per API worker."""

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
        self.slots = asyncio.Semaphore(settings.workers)
        self.notifier = Notifier(self._delivery_failed)
        self.webhooks = WebhookCaller()
        self.web = WebProvider(self._secret_value)
        self.jobs = JobProvider(KubeJobs(self.kube))
        self.gateways = GatewaySupports(self.kube)

    def _secret_value(self, namespace: str, name: str, key: str) -> str:
        """One key of a Secret a web metric's header names, read now (see WebProvider)."""
        where = f"Secret {namespace}/{name}"
        try:
            data = self.kube.read_secret(namespace, name)
        except RefusedError as err:
            raise AnalysisError(
                f"{where}: refused ({err.status}): the operator reads Secrets only where the "
                "chart grants it (rbac.secretReads)"
            ) from None
        if data is None:
            raise AnalysisError(f"{where} does not exist")
        if key not in data:
            raise AnalysisError(f"{where} has no key {key}")
        return data[key]

    async def reconcile(self, namespace: str, name: str, read: Callable[[], World]) -> float | None:
        """Bring one pipeline a step closer to its spec, as ``read`` shows it; return seconds
        until a requeue."""
        started = time.perf_counter()
        # The span records an escaping exception and marks itself as failed.
        with tracer.start_as_current_span(
            "reconcile", attributes={"k8s.namespace.name": namespace, "pipeline.name": name}
        ):
            try:
                requeue = await self._reconcile(namespace, name, read)
            except Exception as err:
                metrics.RECONCILES.labels(result="error").inc()
                metrics.RECONCILE_ERRORS.labels(reason=type(err).__name__).inc()
                raise
            finally:
                metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
            metrics.RECONCILES.labels(result="ok").inc()
            return requeue

    async def _reconcile(
        self, namespace: str, name: str, read: Callable[[], World]
    ) -> float | None:
        # Observed only once a slot is free: a burst of reconciles (a start, a handover, a
        # resync) waits for the slots holding nothing but its loop's packed view, not each a
        # decoded view with its specs and plans.
        async with self.slots:
            seen = self.observe(read())
            if not (isinstance(seen, Observed) and (seen.gateways_due or seen.due or seen.hooks)):
                return await self._decide_and_act(namespace, name, seen, {})
        # Reads of Gateways and measurements take time: done without a slot.
        if seen.gateways_due:
            await self._run(self.api_pool, self.gateways.read, seen.gateways_due)
            seen = self.observe(read())
        measured: dict[tuple[Any, ...], Measured] = {}
        if isinstance(seen, Observed) and (seen.due or seen.hooks):
            measured[_due(seen)] = await self._run(self.analysis_pool, self.ask, seen)
        del seen
        async with self.slots:  # the view may have changed meanwhile: read it again
            return await self._decide_and_act(namespace, name, self.observe(read()), measured)

    async def _decide_and_act(
        self,
        namespace: str,
        name: str,
        seen: Observed | Stop | None,
        measured: dict[tuple[Any, ...], Measured],
    ) -> float | None:
        if seen is None:
            metrics.forget_pipeline(namespace, name)
            return None
        outcome = (
            self.decide(seen, measured.get(_due(seen), Measured()))
            if isinstance(seen, Observed)
            else seen
        )
        return await self._run(self.api_pool, self.act, outcome)

    async def _run(self, pool: Executor | None, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in ``pool``, within this task's context (its span)."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(pool, context.run, fn, *args)

    async def refresh(self, namespace: str, name: str) -> None:
        """Read the pipeline from the API (after a conflict, or once this replica became the
        leader): the next reconcile reads at least that version."""
        body = await self._run(self.api_pool, self.kube.get_pipeline, namespace, name)
        if body is not None:
            self.writes.record(namespace, name, body)

    async def drop_finalizer(self, pipeline: dict[str, Any], finalizer: str) -> None:
        """Remove ``finalizer`` from ``pipeline`` (as the cache shows it); the next view holds
        the result."""
        meta = pipeline["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        kept = [f for f in meta.get("finalizers") or [] if f != finalizer]
        body = await self._run(
            self.api_pool,
            self.kube.patch_pipeline_finalizers,
            namespace,
            name,
            kept,
            meta.get("resourceVersion"),
        )
        self.writes.record(namespace, name, body)

    # -- observe -----------------------------------------------------------------------------

    def observe(self, world: World) -> Observed | Stop | None:
        """What the engine and the planner take, read from ``world`` (no I/O); None when the
        pipeline is gone or going."""
        pipeline = world.pipeline
        if pipeline is None or pipeline["metadata"].get("deletionTimestamp"):
            return None
        meta = pipeline["metadata"]
        name = meta["name"]
        owner = Owner(name=name, namespace=meta["namespace"], uid=meta["uid"])
        status = InferencePipelineStatus.model_validate(pipeline.get("status") or {})
        basis = Basis(world, pipeline, owner, status, self.clock())
        try:
            spec = InferencePipelineSpec.model_validate(pipeline["spec"])
        except ValidationError as err:
            problems = "; ".join(unreadable(err))
            return Stop(basis, Invalid("InvalidSpec", f"invalid spec: {problems}"))

        supports, gateways_due = self.gateways.known(gateway_keys(spec, owner.namespace))
        unsupported = [*self._unsupported(spec), *unsupported_mirrors(spec, supports)]
        invalid = "; ".join([*validate(spec), *unsupported]) or None
        unchecked = [
            f"spec.rollout.trafficRouting.gatewayAPI: not known whether Gateway "
            f"{'/'.join(s.gateway)} mirrors: {s.unknown}"
            for s in supports
            if s.refused
        ]
        # Only what this pipeline controls: a same-named pipeline recreated, or another
        # pipeline whose names hash alike, is never adopted or pruned.
        children = [c for c in world.children if controller_uid(c) == owner.uid]
        snaps = snapshots.parse(world.revisions)
        desired = snapshots.revision_for(spec, snaps, active_revisions(status))
        if invalid is None and desired not in snaps:
            # Nothing of a revision is stored before it is known to plan at all.
            try:
                plan_revision(owner, spec, desired, self.options)
            except PlanError as err:
                return Stop(basis, Invalid("PlanFailed", str(err)))
            snaps |= self._snapshot(basis, desired, spec, snaps)
        lost = [rev for rev in active_revisions(status) if rev not in snaps]
        for revision in lost:
            rebuilt = snapshots.recover(children, revision)
            if rebuilt is not None:
                snaps |= self._snapshot(basis, revision, rebuilt, snaps)
                basis.rebuilt.append(revision)
        missing = [rev for rev in lost if rev not in snaps]
        if missing:
            return Stop(basis, Invalid("SnapshotMissing", snapshots.missing(missing)))

        specs = {rev: snap.spec for rev, snap in snaps.items()}
        services = [c for c in children if c["kind"] == "InferenceService"]
        running = pods.by_component(world.pods)
        observed = {rev: specs[rev] for rev in {*active_revisions(status), desired} if rev in specs}
        refused = refusals.refused_services(status)
        command_value = command_annotation.pending(meta.get("annotations"), status)
        command = None
        if command_value is not None:
            try:
                command = command_annotation.parse(command_value)
            except command_annotation.CommandError as err:
                return Stop(basis, BadCommand(command_value, str(err)))
        return Observed(
            basis=basis,
            spec=spec,
            invalid=invalid,
            desired=desired,
            children=children,
            snaps=snaps,
            specs=specs,
            services=services,
            running=running,
            readiness=readiness(name, observed, services, running, refused),
            routing=self._routing(name, children, world),
            command=command,
            due=due_measurements(spec, status, basis.now),
            hooks=due_webhooks(spec, status, basis.now),
            gateways_due=gateways_due,
            warnings=[*unchecked, *long_hosts(spec, name, owner.namespace, desired)],
        )

    def _unsupported(self, spec: InferencePipelineSpec) -> list[str]:
        """What the spec asks of this operator's installation that it was not given."""
        gateway = spec.rollout.traffic_routing.gateway_api
        if gateway is not None and not self.settings.gateway_api:
            return [
                "spec.rollout.trafficRouting.gatewayAPI: this operator runs without Gateway API "
                "support: install its chart with gatewayAPI.enabled=true"
            ]
        by_traefik = gateway is not None and gateway.mirror_with == "TraefikService"
        if by_traefik and mirror_steps(spec) and not self.settings.traefik_services:
            return [
                "spec.rollout.trafficRouting.gatewayAPI.mirrorWith: this operator runs without "
                "TraefikService support: install its chart with gatewayAPI.traefikServices=true"
            ]
        return []

    def _routing(self, name: str, children: list[dict[str, Any]], world: World) -> Routing:
        graphs = {c["metadata"]["name"]: c for c in children if c["kind"] == "InferenceGraph"}
        main, preview = graph_name(name), graph_name(name, preview=True)
        wanted = [g for g in (main, preview) if g in graphs]
        route = next((c for c in children if c["kind"] == ROUTE_KIND), None)
        mirrorings = {c["metadata"]["name"]: c for c in children if c["kind"] == MIRRORING_KIND}
        return Routing.observe(
            {g: served_traffic(graphs[g], world.routers.get(g), world.pods) for g in wanted},
            main,
            preview,
            (
                (route["metadata"]["name"], route_served(route, graphs, mirrorings))
                if route
                else None
            ),
        )

    def _snapshot(
        self,
        basis: Basis,
        revision: str,
        spec: InferencePipelineSpec,
        snaps: dict[str, snapshots.Snapshot],
    ) -> dict[str, snapshots.Snapshot]:
        """The snapshot to store for ``revision`` (next in number), as parsed."""
        body = snapshots.build(basis.owner, revision, spec, snapshots.next_number(snaps))
        basis.store.append(body)
        return snapshots.parse([body])

    def ask(self, seen: Observed) -> Measured:
        """Measure the analysis metrics and call the webhooks due now."""
        return Measured(self.measure(seen) if seen.due else [], self.call_hooks(seen))

    def call_hooks(self, seen: Observed) -> dict[GateKey, list[WebhookCall]]:
        """Call each due webhook of the gates the canary waits on."""
        pipeline, status = seen.basis.pipeline, seen.basis.status
        out: dict[GateKey, list[WebhookCall]] = {}
        for key, hooks in seen.hooks.items():
            calls = out.setdefault(key, [])
            for hook in hooks:
                answer = self.webhooks.call(hook, webhook_body(pipeline, status, hook, key[1]))
                at = stamp(self.clock())
                calls.append(
                    WebhookCall(name=hook.name, success=answer.ok, message=answer.message, at=at)
                )
        return out

    def measure(self, seen: Observed) -> list[Measurement]:
        """Run the analysis queries due now."""
        status, now = seen.basis.status, seen.basis.now
        if status.canary_revision is None or status.current_step_index is None:
            return []
        analysis = canary_steps(seen.spec)[status.current_step_index].analysis
        address = (analysis.address if analysis else None) or self.settings.prometheus_address
        owner = seen.basis.owner
        subject = Subject(
            owner.name,
            status.canary_revision,
            status.stable_revision or "",
            owner.namespace,
            uid=owner.uid,
            step=status.current_step_index,
            started=status.step_started_at or "",
            urls=revision_urls(owner.namespace, seen.children),
        )
        taken_before = status.analysis.measurements if status.analysis else []
        out = []
        for metric in seen.due:
            try:
                provider = self._provider(metric, address)
            except AnalysisError as err:
                out.append(
                    Measurement(metric=metric.name, success=False, message=str(err), at=stamp(now))
                )
                continue
            ordinal = taken([m for m in taken_before if m.metric == metric.name])
            out.append(measure(provider, metric, replace(subject, ordinal=ordinal), now))
        return out

    def _provider(self, metric: AnalysisMetric, address: str | None) -> AnalysisProvider:
        """The metric's web call or Job, or the Prometheus at ``address``."""
        if metric.web is not None:
            return self.web
        if metric.job is not None:
            return self.jobs
        if address is None:
            raise AnalysisError(
                "no Prometheus address: set the analysis step's address or the operator's"
            )
        return self.provider_for(address)

    # -- decide ------------------------------------------------------------------------------

    def decide(self, seen: Observed, measured: Measured) -> Decided | Stop:
        """The engine's next status and the objects the planner renders for it (pure)."""
        basis = seen.basis
        decision = step(
            seen.spec,
            basis.status,
            Observations(
                now=basis.now,
                desired_revision=seen.desired,
                ready=seen.readiness.ready,
                reasons=seen.readiness.reasons,
                command=seen.command,
                measurements=measured.measurements,
                webhook_calls=measured.calls,
                invalid=seen.invalid,
                served=seen.routing.served,
                mirror_served=seen.routing.mirror_served,
                preview_served=seen.routing.preview_served,
                routing=seen.routing.waiting,
                replicas=seen.readiness.replicas,
                unschedulable={
                    r.name: [st.name for st in r.stages if st.unschedulable]
                    for r in seen.readiness.revisions
                },
                warnings=[*lint(seen.spec, self.options.deployment_mode), *seen.warnings],
            ),
            generation=basis.pipeline["metadata"].get("generation"),
        )
        serving = active_revisions(decision.status)
        try:
            wanted = plan(
                basis.owner,
                {rev: seen.specs[rev] for rev in serving},
                decision.status,
                self.options,
                capacity(seen.spec),
                revision_graphs=runs_jobs(seen.spec),
                routing=seen.spec.rollout.traffic_routing,
            )
        except PlanError as err:
            return Stop(basis, Invalid("PlanFailed", str(err)))
        return Decided(seen, decision, serving, wanted)

    # -- act ---------------------------------------------------------------------------------

    def act(self, outcome: Decided | Stop) -> float | None:
        """Store new snapshots, then apply the decision (or report why there is none)."""
        basis = outcome.seen.basis if isinstance(outcome, Decided) else outcome.basis
        self._store_snapshots(basis)
        if isinstance(outcome, Decided):
            return self._apply(outcome)
        if isinstance(outcome.why, BadCommand):
            self._reject_command(basis, outcome.why)
            return 0.0
        self._report_invalid(basis, outcome.why.reason, outcome.why.message)
        return None

    def _apply(self, decided: Decided) -> float | None:
        seen, decision, serving = decided.seen, decided.decision, decided.serving
        basis = seen.basis
        name = basis.owner.name
        applied = self._converge(basis, decided.wanted, seen.children, seen.routing.served)
        final = readiness(
            name,
            {rev: seen.specs[rev] for rev in serving},
            seen.services,
            seen.running,
            applied.refused,
        )
        new_status = self._with_observed(
            decision.status, final.revisions, serving, seen.children, name
        )
        new_status = new_status.model_copy(
            update={"routers": seen.routing.report(changed=applied.graphs_changed)}
        )
        new_status, refusal = refusals.report(new_status, applied.errors, stamp(basis.now))
        self._prune_snapshots(basis, seen.snaps, serving)
        self._write_status(basis, new_status)
        self._post(basis.pipeline, decision, seen.spec)
        if refusal is not None:
            log.warning("%s/%s: %s", basis.owner.namespace, name, refusal)
            self.kube.post_event(basis.pipeline, "Warning", refusals.REASON, refusal)
        for reason, report in (
            (pods.REASON, pods.report(basis.status.revisions, new_status.revisions)),
            (pods.FAILING, pods.report_failing(basis.status.revisions, new_status.revisions)),
        ):
            if report is not None:
                log.warning("%s/%s: %s", basis.owner.namespace, name, report)
                self.kube.post_event(basis.pipeline, "Warning", reason, report)
        self._export(basis.owner.namespace, name, new_status)
        waits = [w for w in (decision.requeue_after, applied.requeue_after) if w is not None]
        return min(waits, default=None)

    def _wrote(self, basis: Basis, response: dict[str, Any] | None) -> None:
        """Record a write's response, so that the next reconcile reads at least that."""
        if response:
            self.writes.record(basis.owner.namespace, basis.owner.name, response)

    def _deleted(self, basis: Basis, obj: dict[str, Any]) -> None:
        key = key_of(obj)
        after = basis.world.versions.get(key, 0)
        self.writes.deleted(basis.owner.namespace, basis.owner.name, key, after)

    def _converge(
        self,
        basis: Basis,
        wanted: list[dict[str, Any]],
        children: list[dict[str, Any]],
        served: dict[str, int] | None,
    ) -> Applied:
        """Apply what differs, then retire children no longer wanted.

        A child the apiserver refuses is recorded and the others are still applied. Graphs
        no longer wanted go at once. An InferenceService the graph stopped routing to is
        retired only once the router serves the graph without it (``served`` known, and the
        graph unchanged by this reconcile), then deleted ``drain_seconds`` later, so requests
        that router pods already accepted can finish. A TraefikService goes once the route
        no longer names it and its Gateways have taken that route in (``served`` known, the
        route unchanged by this reconcile). A child already being deleted is left to go.
        """
        now = basis.now
        live = {(c["kind"], c["metadata"]["name"]): c for c in children}
        out = Applied()
        route_changed = False
        for obj in wanted:
            current = live.get((obj["kind"], obj["metadata"]["name"]))
            try:
                wrote = self._sync(basis, obj, current)
            except RefusedError as err:
                meta = obj["metadata"]
                error = ApplyError(kind=obj["kind"], name=meta["name"], message=err.message)
                out.errors.append(error)
                continue
            if wrote and obj["kind"] == "InferenceGraph":
                out.graphs_changed.add(obj["metadata"]["name"])
            route_changed = route_changed or (wrote and obj["kind"] == ROUTE_KIND)
            if current is not None and retired_at(current) is not None:
                log.info("back in service: %s", ref(current))
                self._wrote(basis, self.kube.annotate(current, RETIRED_AT, None))
        keep = {(o["kind"], o["metadata"]["name"]) for o in wanted}
        settled = served is not None and not out.graphs_changed
        drain = self.settings.drain_seconds
        for obj in sorted(
            (
                c
                for key, c in live.items()
                if key not in keep and not c["metadata"].get("deletionTimestamp")
            ),
            key=lambda c: c["kind"] != "InferenceGraph",
        ):
            retired = retired_at(obj)
            if obj["kind"] == MIRRORING_KIND and (served is None or route_changed):
                continue  # the route may still name it; the Gateway's verdict wakes it again
            if obj["kind"] == "InferenceService":
                if retired is None and not settled:
                    continue  # still routed to until the router has rolled out
                if retired is None and drain > 0:
                    log.info("retiring %s (deleted in %.0fs)", ref(obj), drain)
                    self._wrote(basis, self.kube.annotate(obj, RETIRED_AT, stamp(now)))
                    retired = now
                wait = (retired - now).total_seconds() + drain if retired else 0.0
                if wait > 0:
                    out.wait(wait)
                    continue
            log.info("deleting %s", ref(obj))
            self.kube.delete(obj)
            self._deleted(basis, obj)
        return out

    def _sync(self, basis: Basis, obj: dict[str, Any], current: dict[str, Any] | None) -> bool:
        """Bring one child to the plan (see :mod:`~pipeline_operator.core.observe.drift`); True
        if written."""
        if current is None:
            log.info("creating %s", ref(obj))
            self._wrote(basis, self.kube.apply(obj))
            return True
        change = drift(obj, current, self.settings.field_manager)
        if change.remove:
            log.info("removing %s from %s", ", ".join(change.remove), ref(obj))
            self._wrote(basis, self.kube.remove_fields(current, change.remove))
        if change.reapply:
            log.info("applying %s", ref(obj))
            self._wrote(basis, self.kube.apply(obj))
        return change != Drift()

    def _store_snapshots(self, basis: Basis) -> None:
        for body in basis.store:
            # None: one of that name exists, with the same spec (names are per revision).
            self._wrote(basis, self.kube.create_revision(body))
        for revision in basis.rebuilt:
            message = f"spec snapshot of revision {revision} rebuilt from its children"
            log.warning("%s/%s: %s", basis.owner.namespace, basis.owner.name, message)
            self.kube.post_event(basis.pipeline, "Warning", "SnapshotRebuilt", message)

    def _prune_snapshots(
        self, basis: Basis, snaps: dict[str, snapshots.Snapshot], serving: list[str]
    ) -> None:
        for snap in snapshots.expired(snaps, serving, self.settings.revision_history_limit):
            self.kube.delete_revision(basis.owner.namespace, snap.name)
            self._deleted(basis, {"kind": "ControllerRevision", "metadata": {"name": snap.name}})

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

    def _write_status(self, basis: Basis, new: InferencePipelineStatus) -> None:
        body = new.model_dump(by_alias=True, mode="json", exclude_none=True)
        patch = merge_patch(dict(basis.pipeline.get("status") or {}), body)
        if patch:
            meta = basis.pipeline["metadata"]
            response = self.kube.patch_pipeline_status(
                meta["namespace"], meta["name"], patch, meta.get("resourceVersion")
            )
            self._wrote(basis, response)

    def _post(
        self, pipeline: dict[str, Any], decision: Decision, spec: InferencePipelineSpec
    ) -> None:
        """The decision's Events, and its transitions to the pipeline's notification sinks."""
        for event in decision.events:
            log.info("%s %s: %s", pipeline["metadata"]["name"], event.reason, event.message)
            self.kube.post_event(pipeline, event.type, event.reason, event.message)
        sinks = spec.rollout.notifications
        if sinks and decision.events:
            at = stamp(self.clock())
            bodies = [transition(pipeline, decision.status, e, at) for e in decision.events]
            self.notifier.send(pipeline, sinks, bodies)
        if any(e.reason in ROLLOUT_ENDED for e in decision.events):
            for hook in gates.webhooks_of(spec, "PostRollout"):
                self.notifier.tell(pipeline, hook, webhook_body(pipeline, decision.status, hook))

    def _delivery_failed(self, pipeline: dict[str, Any], reason: str, message: str) -> None:
        log.warning("%s %s: %s", pipeline["metadata"]["name"], reason, message)
        self.kube.post_event(pipeline, "Warning", reason, message)

    def _export(self, namespace: str, name: str, status: InferencePipelineStatus) -> None:
        traffic = {t.revision: t.weight for t in status.traffic}
        phase = str(status.phase) if status.phase else None
        metrics.export_pipeline(namespace, name, status.current_step_index, traffic, phase)

    # -- reports without the engine ----------------------------------------------------------

    def _report_invalid(self, basis: Basis, reason: str, message: str) -> None:
        """Degraded with a Ready=False condition and a Warning Event; a pending command is
        rejected with the same reason. Nothing else changes."""
        status, pipeline = basis.status, basis.pipeline
        now = stamp(basis.now)
        value = command_annotation.pending(pipeline["metadata"].get("annotations"), status)
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
        self._write_status(basis, status.model_copy(update=update))
        if status.message != message:
            self.kube.post_event(pipeline, "Warning", reason, message)
        if value is not None:
            self.kube.post_event(pipeline, "Warning", "CommandRejected", message)

    def _reject_command(self, basis: Basis, bad: BadCommand) -> None:
        ack = CommandAck(
            command=bad.value, result="Rejected", message=bad.message, at=stamp(basis.now)
        )
        self._write_status(basis, basis.status.model_copy(update={"last_command": ack}))
        self.kube.post_event(basis.pipeline, "Warning", "CommandRejected", bad.message)


def _due(seen: Observed) -> tuple[Any, ...]:
    """What a set of measurements and webhook calls is for: the rollout, its step, the
    metrics and the gates' webhooks."""
    status = seen.basis.status
    rollout = (status.canary_revision, status.current_step_index)
    hooks = ((key, h.name) for key, hooks in seen.hooks.items() for h in hooks)
    return (*rollout, *(m.name for m in seen.due), *hooks)
