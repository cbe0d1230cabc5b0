"""Watches that keep the operator's :class:`~pipeline_operator.k8s.cache.Store` current.

One list-then-watch loop per watched kind and namespace, each in a thread of its own (the
synchronous Kubernetes client), handing what it reads to the event loop: a listing page by
page, then its end (what it did not hold was deleted meanwhile), then each watch event. A loop
watches from its listing's resourceVersion with bookmarks, resumes from the last version it
saw when the apiserver ends a watch, and lists again when the watch expired (410 Gone), or
after a jittered backoff when it failed. The operator awaits every loop's first listing before
any reconcile runs, so the first reconcile after a start already sees everything.

The pipelines' watch also starts and ends their reconcile loops (``controller.loop``). These
watches replace kopf's: its indexes' readiness bookkeeping costs time quadratic in the number
of watched objects when they are listed together, as on every start, and its daemons kept an
untrimmed copy of every pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from pipeline_operator.api.v1alpha1 import GROUP, PLURAL, VERSION
from pipeline_operator.core.naming import LABEL_PIPELINE
from pipeline_operator.k8s.cache import (
    GRAPHS,
    MIRRORS,
    PIPELINES,
    PODS,
    ROUTER_LABEL,
    ROUTERS,
    ROUTES,
    SERVICES,
    SNAPSHOTS,
    Kind,
    Label,
    Store,
)
from pipeline_operator.telemetry import metrics

log = logging.getLogger(__name__)

GONE = 410
PAGE = 100
"""Objects per page of a listing. A page is decoded whole (an InferenceService as the API
gives it is about 10 KB of JSON, several times that as Python objects), and each informer
holds one at a time: a start, a relist or a leader handover lists every watched kind at
once, and larger pages would raise the operator's peak memory far above what its store
holds."""
WATCH_SECONDS = 300
"""How long the apiserver keeps one watch request open before the loop resumes it."""
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Resource:
    """A watched kind: its API path and the label selector that keeps its watch to what the
    operator reads (the pipeline label on its children, snapshots and KServe's pods; the
    graph label KServe puts on router Deployments)."""

    kind: Kind
    group: str
    """The API group; empty for the core group."""
    version: str
    plural: str
    selector: str | None = None

    def path(self, namespace: str | None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"{base}{where}/{self.plural}"


WATCHED = (
    Resource(PIPELINES, GROUP, VERSION, PLURAL),
    Resource(SERVICES, "serving.kserve.io", "v1beta1", "inferenceservices", LABEL_PIPELINE),
    Resource(GRAPHS, "serving.kserve.io", "v1alpha1", "inferencegraphs", LABEL_PIPELINE),
    Resource(SNAPSHOTS, "apps", "v1", "controllerrevisions", LABEL_PIPELINE),
    Resource(PODS, "", "v1", "pods", LABEL_PIPELINE),
    Resource(ROUTERS, "apps", "v1", "deployments", ROUTER_LABEL),
)
HTTP_ROUTES = Resource(ROUTES, "gateway.networking.k8s.io", "v1", "httproutes", LABEL_PIPELINE)
"""Watched too where the operator routes through the Gateway API (settings.gateway_api)."""
TRAEFIK_SERVICES = Resource(MIRRORS, "traefik.io", "v1alpha1", "traefikservices", LABEL_PIPELINE)
"""Watched too where pipelines mirror through Traefik (settings.traefik_services)."""


@dataclass(frozen=True)
class Page:
    """A page of a listing."""

    resource: Resource
    items: list[dict[str, Any]]


@dataclass(frozen=True)
class Listed:
    """A listing of ``resource`` in ``namespace`` (None: every namespace) is complete: it
    held the objects ``uids``, and no others, as of resourceVersion ``version``."""

    resource: Resource
    namespace: str | None
    uids: frozenset[str]
    version: int


@dataclass(frozen=True)
class Change:
    """One watch event: ``type`` ADDED, MODIFIED or DELETED."""

    resource: Resource
    type: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Unlistable:
    """The first listing of ``resource`` was refused for good: the API has no such resource
    (404: its CRD is not installed) or the operator may not list it (403). Retrying does not
    help; the operator stops and says which."""

    resource: Resource
    namespace: str | None
    status: int
    reason: str

    def describe(self) -> str:
        where = f"namespace {self.namespace}" if self.namespace else "all namespaces"
        name = f"{self.resource.plural}.{self.resource.group}".rstrip(".")
        hint = (
            "is its CRD installed (KServe's, for serving.kserve.io)?"
            if self.status == 404
            else "the operator's RBAC must allow list and watch on it"
        )
        return f"cannot list {name} in {where}: {self.status} {self.reason}: {hint}"


Update = Page | Listed | Change | Unlistable


class UnlistableError(Exception):
    """A watched kind cannot be listed at all (see :class:`Unlistable`)."""


class ExpiredError(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class Informer:
    """List-then-watch of one resource in one namespace (None: all), in a thread."""

    def __init__(
        self,
        api: client.ApiClient,
        resource: Resource,
        namespace: str | None,
        deliver: Callable[[Update], None],
    ) -> None:
        self.api, self.resource, self.namespace, self.deliver = api, resource, namespace, deliver
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"watch-{resource.plural}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current request (a watch ends within ``WATCH_SECONDS``)."""
        self._stopping.set()

    def _run(self) -> None:
        backoff = 1.0
        listed = False
        while not self._stopping.is_set():
            try:
                version = self._list()
                listed, backoff = True, 1.0
                while not self._stopping.is_set():
                    version = self._watch(version)
            except ExpiredError:
                log.info("watch of %s expired; listing again", self.resource.plural)
            except Exception as err:  # the apiserver away, a timeout: list again, later
                status = err.status if isinstance(err, ApiException) else None
                if status in (403, 404) and not listed:  # for good: no CRD, no RBAC
                    reason = str(getattr(err, "reason", "") or "")
                    self.deliver(Unlistable(self.resource, self.namespace, int(status), reason))
                    return
                log.warning(
                    "watch of %s failed (%s); listing again in %.0fs",
                    self.resource.plural,
                    err,
                    backoff,
                )
                self._stopping.wait(backoff * random.uniform(0.5, 1.5))
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _list(self) -> str:
        """List and deliver every page, then the listing's end; return its resourceVersion."""
        uids: set[str] = set()
        token: str | None = None
        while True:
            query = [("limit", str(PAGE)), *self._selector()]
            if token:
                query.append(("continue", token))
            metrics.API_READS.labels(verb="list", kind=self.resource.kind.name).inc()
            page = self.api.call_api(
                self.resource.path(self.namespace),
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=(30, 120),
            )
            items = page.get("items") or []
            uids.update(str(item.get("metadata", {}).get("uid")) for item in items)
            self.deliver(Page(self.resource, items))
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
        listed = str((page.get("metadata") or {}).get("resourceVersion") or "")
        version = int(listed) if listed.isdigit() else 0
        self.deliver(Listed(self.resource, self.namespace, frozenset(uids), version))
        return listed

    def _watch(self, version: str) -> str:
        """Watch from ``version`` until the apiserver ends the request; the last version."""
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", version),
            ("timeoutSeconds", str(WATCH_SECONDS)),
            *self._selector(),
        ]
        try:
            response = self.api.call_api(
                self.resource.path(self.namespace),
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=(30, WATCH_SECONDS + 30),
            )
        except ApiException as err:
            if err.status == GONE:
                raise ExpiredError() from None
            raise
        try:
            for event in _events(response):
                kind, body = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if body.get("code") == GONE:
                        raise ExpiredError()
                    raise ApiException(status=body.get("code"), reason=body.get("message"))
                version = (body.get("metadata") or {}).get("resourceVersion") or version
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self.deliver(Change(self.resource, str(kind), body))
                if self._stopping.is_set():
                    break
        finally:
            response.close()
            response.release_conn()
        return version

    def _selector(self) -> list[tuple[str, str]]:
        return [("labelSelector", self.resource.selector)] if self.resource.selector else []


def _events(response: Any) -> Iterator[dict[str, Any]]:
    for line in iter_resp_lines(response):
        if line and not line.isspace():
            yield json.loads(line)


class Watches:
    """Every informer of the operator, feeding one store on the event loop.

    ``on_change`` gets, for each update, the labels of the pipelines whose view it changed,
    and the watch event or the end of a listing (None for a page).
    """

    def __init__(
        self,
        api: client.ApiClient,
        namespaces: list[str | None],
        store: Store,
        on_change: Callable[[set[Label], Change | Listed | None], None],
        resources: Sequence[Resource] = WATCHED,
    ) -> None:
        self.store, self.on_change = store, on_change
        self.informers = [
            Informer(api, resource, namespace, self._deliver)
            for namespace in namespaces
            for resource in resources
        ]
        self._unlisted = {(i.resource.plural, i.namespace) for i in self.informers}
        self._unlistable: Unlistable | None = None
        self._listed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    def not_ready(self) -> str | None:
        """Why the operator is not ready yet (None: every first listing is in)."""
        if self._unlistable is not None:
            return self._unlistable.describe()
        if self._unlisted:
            return "listing " + ", ".join(sorted(plural for plural, _ in self._unlisted))
        return None

    async def start(self, progress_every: float = 10.0) -> None:
        """Start every informer and wait until each has delivered its first listing; raise
        :class:`UnlistableError` at once when one is refused for good."""
        self._loop = asyncio.get_running_loop()
        started = self._loop.time()
        for informer in self.informers:
            informer.start()
        while not self._listed.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listed.wait(), progress_every)
            if self._unlistable is not None:
                self.stop()
                raise UnlistableError(self._unlistable.describe())
            if not self._listed.is_set():
                log.info(
                    "listing what the operator watches: %d objects so far, waiting for %s",
                    self.store.size(),
                    ", ".join(sorted(plural for plural, _ in self._unlisted)),
                )
        log.info(
            "watching %d objects (listed in %.1fs)",
            self.store.size(),
            self._loop.time() - started,
        )

    def stop(self) -> None:
        self._stopped = True
        for informer in self.informers:
            informer.stop()

    def _deliver(self, update: Update) -> None:
        """From an informer's thread: apply ``update`` on the event loop. A listing's page is
        waited for until applied, so an informer never fetches a page while the last one is
        still queued: it holds one page at a time, not as many as it lists while the event
        loop is busy."""
        assert self._loop is not None
        if not isinstance(update, Page):
            self._loop.call_soon_threadsafe(self._apply, update)
            return
        applied = threading.Event()
        self._loop.call_soon_threadsafe(self._apply_page, update, applied)
        while not applied.wait(1.0) and not self._stopped:
            pass

    def _apply_page(self, page: Page, applied: threading.Event) -> None:
        try:
            self._apply(page)
        finally:
            applied.set()

    def _apply(self, update: Update) -> None:
        kind = update.resource.kind
        changed: set[Label] = set()
        if isinstance(update, Unlistable):
            self._unlistable = self._unlistable or update
            self._listed.set()  # wakes start(), which raises
            return
        if isinstance(update, Page):
            for item in update.items:
                changed |= self.store.put(kind, item)
        elif isinstance(update, Listed):
            changed = self.store.prune(kind, update.namespace, update.uids)
            self._unlisted.discard((update.resource.plural, update.namespace))
            if not self._unlisted:
                self._listed.set()
        elif update.type == "DELETED":
            changed = self.store.delete(str(update.body.get("metadata", {}).get("uid")))
        else:
            changed = self.store.put(kind, update.body)
        self.on_change(changed, None if isinstance(update, Page) else update)
