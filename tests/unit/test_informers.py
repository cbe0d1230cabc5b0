"""The list-then-watch loop against a scripted apiserver: pages, events, resumption, relist."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import aiohttp
import pytest
from kubernetes.client.exceptions import ApiException

from pipeline_operator.controller import health
from pipeline_operator.k8s.cache import Store
from pipeline_operator.k8s.informers import (
    WATCHED,
    Change,
    Informer,
    Listed,
    Page,
    Unlistable,
    UnlistableError,
    Update,
    Watches,
)
from tests.harness.processes import free_port

SERVICES = next(r for r in WATCHED if r.plural == "inferenceservices")


def obj(uid: str, version: int) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "name": uid, "resourceVersion": str(version)}}


class Stream:
    """A watch response: the events as JSON lines."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.body = b"".join(json.dumps(e).encode() + b"\n" for e in events)

    def stream(self, amt: Any = None, decode_content: Any = None) -> Any:
        yield self.body

    def close(self) -> None: ...

    def release_conn(self) -> None: ...


class Apiserver:
    """Answers the informer's requests from a script, one answer per request, and records
    each request's query; stops the informer when the script runs out."""

    def __init__(self, answers: list[Any], informer_stop: threading.Event) -> None:
        self.answers, self.queries, self.done = list(answers), [], informer_stop

    def call_api(self, path: str, method: str, query_params: list[Any], **_: Any) -> Any:
        self.queries.append(dict(query_params))
        if not self.answers:
            self.done.set()
            return Stream([])
        return self.answers.pop(0)


def run(answers: list[Any]) -> tuple[list[Update], list[dict[str, str]]]:
    updates: list[Update] = []
    finished = threading.Event()
    api = Apiserver(answers, finished)
    informer = Informer(api, SERVICES, "ml", updates.append)  # type: ignore[arg-type]
    informer.start()
    assert finished.wait(10)
    informer.stop()
    return updates, api.queries


def test_pages_then_events_then_a_resumed_watch() -> None:
    updates, queries = run(
        [
            {"items": [obj("a", 3)], "metadata": {"continue": "next"}},
            {"items": [obj("b", 4)], "metadata": {"resourceVersion": "10"}},
            Stream(
                [
                    {"type": "ADDED", "object": obj("c", 11)},
                    {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
                ]
            ),
        ]
    )
    assert [type(u) for u in updates[:4]] == [Page, Page, Listed, Change]
    listed = updates[2]
    assert isinstance(listed, Listed) and listed.uids == frozenset({"a", "b"})
    assert queries[0]["labelSelector"] == "pipelines.inference.dev/pipeline"
    assert queries[1]["continue"] == "next"
    assert queries[2]["resourceVersion"] == "10" and queries[2]["watch"] == "true"
    assert queries[3]["resourceVersion"] == "15"  # resumed from the bookmark


def test_an_expired_watch_lists_again_and_the_new_listing_says_what_is_left() -> None:
    updates, queries = run(
        [
            {"items": [obj("a", 3), obj("b", 4)], "metadata": {"resourceVersion": "10"}},
            Stream([{"type": "ERROR", "object": {"code": 410, "message": "too old"}}]),
            {"items": [obj("b", 4)], "metadata": {"resourceVersion": "20"}},
        ]
    )
    listings = [u for u in updates if isinstance(u, Listed)]
    assert [sorted(u.uids) for u in listings] == [["a", "b"], ["b"]]
    assert "watch" not in queries[2] and queries[3]["resourceVersion"] == "20"


class Refusing:
    """An apiserver that refuses every request with ``status``."""

    def __init__(self, status: int) -> None:
        self.status, self.calls = status, 0

    def call_api(self, *_: Any, **__: Any) -> Any:
        self.calls += 1
        raise ApiException(status=self.status, reason="Not Found" if self.status == 404 else "x")


@pytest.mark.parametrize(("status", "hint"), [(404, "is its CRD installed"), (403, "RBAC")])
def test_a_kind_the_operator_cannot_list_at_all_stops_start_up_naming_it(
    status: int, hint: str
) -> None:
    """KServe's CRDs missing, or a forbidden list: retrying for ever would hold start-up (and
    the pod's probes) hostage. The first refusal stops it, naming the kind and the cure."""
    updates: list[Update] = []
    api = Refusing(status)
    informer = Informer(api, SERVICES, None, updates.append)  # type: ignore[arg-type]
    informer.start()
    informer._thread.join(10)
    assert not informer._thread.is_alive() and api.calls == 1
    [refused] = updates
    assert isinstance(refused, Unlistable)
    message = refused.describe()
    assert message.startswith(
        f"cannot list inferenceservices.serving.kserve.io in all namespaces: {status}"
    )
    assert hint in message

    async def start() -> None:
        watches = Watches(Refusing(status), [None], Store(), lambda *_: None)  # type: ignore[arg-type]
        with pytest.raises(UnlistableError, match=f"cannot list .* {status} ") as stopped:
            await watches.start(progress_every=0.1)
        assert watches.not_ready() == str(stopped.value)

    asyncio.run(start())


def test_health_answers_at_once_and_readiness_waits_for_the_listings() -> None:
    async def probe() -> None:
        waiting: list[str | None] = ["listing inferenceservices, pods"]
        port = free_port()
        runner = await health.serve(port, lambda: waiting[0])
        try:
            async with aiohttp.ClientSession() as session:

                async def get(path: str) -> tuple[int, str]:
                    async with session.get(f"http://127.0.0.1:{port}{path}") as response:
                        return response.status, await response.text()

                assert await get("/healthz") == (200, "ok")
                assert await get("/readyz") == (503, "listing inferenceservices, pods")
                waiting[0] = None
                assert await get("/readyz") == (200, "ok")
        finally:
            await runner.cleanup()

    asyncio.run(probe())


def test_an_informer_fetches_its_next_page_only_once_the_last_is_in_the_store() -> None:
    """A listing delivers pages to a busy event loop: were they queued, the operator would
    hold every page of the listing at once at a start."""
    order: list[str] = []

    class Paging:
        def __init__(self) -> None:
            self.pages = [
                {"items": [obj("a", 3)], "metadata": {"continue": "next"}},
                {"items": [obj("b", 4)], "metadata": {"resourceVersion": "10"}},
            ]

        def call_api(self, path: str, method: str, query_params: list[Any], **_: Any) -> Any:
            if not self.pages:
                return Stream([])
            order.append(f"fetch {len(order)}")
            return self.pages.pop(0)

    def busy(changed: Any, change: Any) -> None:
        if change is None:  # a page: the event loop is slow to take it
            threading.Event().wait(0.3)
            order.append("applied")

    async def start() -> None:
        watches = Watches(Paging(), ["ml"], Store(), busy, (SERVICES,))  # type: ignore[arg-type]
        await watches.start()
        watches.stop()

    asyncio.run(start())
    assert order == ["fetch 0", "applied", "fetch 2", "applied"]
