"""kopf wiring (registration only): the operator's start-up and clean-up.

The watches (:mod:`~pipeline_operator.k8s.informers`) keep the pipelines and everything their
reconciles read in a store (InferenceServices and InferenceGraphs, the ControllerRevisions
holding spec snapshots, the stages' pods and the graphs' router Deployments, all but the
pipelines filtered by label in the apiserver), each object trimmed (see
:mod:`~pipeline_operator.k8s.cache`), so a reconcile reads memory, not the API. Each pipeline
in the store has its reconcile loop (:mod:`~pipeline_operator.controller.loop`), started once
everything is listed, so the first reconcile after a start already sees everything. kopf runs
the operator's lifecycle (start-up, signals, clean-up) and registers no handler per resource:
it keeps no copy of any pipeline beside the store's trimmed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from pipeline_operator.controller import health
from pipeline_operator.controller.leader import Alone, Leadership, identity
from pipeline_operator.controller.loop import Loops, ended, reconcile_loop, wake_changed
from pipeline_operator.controller.reconcile import Reconciler
from pipeline_operator.k8s.cache import Store
from pipeline_operator.k8s.client import Kube, load_config
from pipeline_operator.k8s.informers import (
    HTTP_ROUTES,
    TRAEFIK_SERVICES,
    WATCHED,
    UnlistableError,
    Watches,
)
from pipeline_operator.settings import OperatorSettings
from pipeline_operator.telemetry import metrics, tracing

log = logging.getLogger(__name__)

LOOPS_STOP_TIMEOUT = 10.0
"""Seconds the reconciles in flight get to finish when the operator stops."""


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    config: OperatorSettings = memo.settings
    memo.watches = None
    if config.health_port:  # first: probes answer while the watches list
        memo.health = await health.serve(
            config.health_port,
            lambda: memo.watches.not_ready() if memo.watches else "starting",
        )
    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_client_timeout
    settings.watching.connect_timeout = 30
    if config.namespaces:
        # Exact namespaces need no scanning: kopf would otherwise list all namespaces, which a
        # namespaced installation may not, and retry the refusal for a minute and a half.
        settings.scanning.disabled = True
    if config.metrics_port:
        metrics.start_server(config.metrics_port)
    tracing.configure()
    kube = Kube(load_config(connections=config.workers + 1), config.field_manager)
    memo.loops = Loops(
        lambda namespace, name, loop: reconcile_loop(namespace, name, loop, memo),
        lambda namespace, name, gone: ended(memo, namespace, name, gone),
    )
    leadership: Alone | Leadership = Alone()
    if config.lease_name:
        namespace = (
            config.lease_namespace
            or os.environ.get("POD_NAMESPACE")
            or next(iter(config.namespaces), "default")
        )
        leadership = Leadership(kube, namespace, config.lease_name, identity())
        leadership.on_leading = memo.loops.wake_all
        kube.write_window = leadership.window
        memo.elector = asyncio.create_task(leadership.run())
    else:
        metrics.LEADER.set(1)
    memo.leadership = leadership
    memo.reconciler = Reconciler(
        kube,
        config,
        api_pool=ThreadPoolExecutor(config.workers, thread_name_prefix="api"),
        analysis_pool=ThreadPoolExecutor(config.analysis_workers, thread_name_prefix="analysis"),
    )
    namespaces: list[str | None] = [*sorted(config.namespaces)] or [None]
    memo.store = Store()
    memo.watches = Watches(
        load_config(connections=len(namespaces) * 6),
        namespaces,
        memo.store,
        lambda changed, change: wake_changed(memo, changed, change),
        (
            *WATCHED,
            *([HTTP_ROUTES] if config.gateway_api else []),
            *([TRAEFIK_SERVICES] if config.gateway_api and config.traefik_services else []),
        ),
    )
    try:
        await memo.watches.start()
    except UnlistableError as err:  # no CRD, no RBAC: say which, and stop
        log.error("%s", err)
        raise kopf.PermanentError(str(err)) from None
    memo.loops.start(memo.store.every_pipeline())


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop watching and writing, let the writes in flight finish, and hand the Lease over at
    once."""
    if memo.get("health") is not None:
        await memo.health.cleanup()
    if memo.get("watches") is None:
        return
    await memo.loops.stop(LOOPS_STOP_TIMEOUT)
    memo.watches.stop()
    leadership = memo.leadership
    pool = memo.reconciler.api_pool
    if isinstance(leadership, Leadership):
        memo.elector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await memo.elector
        await asyncio.to_thread(
            leadership.release, lambda: pool.shutdown(wait=True, cancel_futures=True)
        )
