"""The list-then-watch loop against a scripted apiserver: pages, events, resumption, relist."""

from __future__ import annotations

import json
import threading
from typing import Any

from pipeline_operator.k8s.informers import WATCHED, Change, Informer, Listed, Page, Update

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
