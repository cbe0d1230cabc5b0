"""A steady stream of requests through a pipeline's Service, and who answered each one.

Each response of the kit's stages carries ``revisions`` (which revision of every stage served
it), so the share of requests each revision answered is measured from the responses, not
taken from the configured weights.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Answer:
    """One request's outcome: when, the HTTP status, and the revisions that served it."""

    at: float
    status: int
    revisions: frozenset[str]


class Traffic:
    """Sends ``texts`` round-robin to ``url`` (an InferenceGraph's Service) until stopped."""

    def __init__(self, url: str, texts: Sequence[str], pause: float = 0.1) -> None:
        self.url = url
        self.texts = list(texts)
        self.pause = pause
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as http:
            for text in itertools.cycle(self.texts):
                if self._stop.is_set():
                    return
                self.answers.append(ask(self.url, text, http))
                time.sleep(self.pause)

    def since(self, moment: float) -> list[Answer]:
        return [a for a in list(self.answers) if a.at >= moment]

    @staticmethod
    def shares(answers: Sequence[Answer]) -> dict[str, float]:
        """Per revision, the share of the answered requests it served."""
        ok = [a for a in answers if a.status == 200]
        counts = Counter(revision for a in ok for revision in a.revisions)
        return {revision: count / len(ok) for revision, count in counts.items()} if ok else {}


def ask(url: str, text: str, http: httpx.Client | None = None) -> Answer:
    """One request of one text; a connection failure is status 0."""
    try:
        if http is None:
            response = httpx.post(url, json={"instances": [text]}, timeout=30)
        else:
            response = http.post(url, json={"instances": [text]})
        status, body = response.status_code, response.json()
    except (httpx.HTTPError, ValueError):
        status, body = 0, {}
    return Answer(time.monotonic(), status, served_by(body))


def served_by(body: object) -> frozenset[str]:
    """The revisions named in a response's predictions (``revisions`` of each stage)."""
    if not isinstance(body, dict):
        return frozenset()
    found: set[str] = set()
    for prediction in body.get("predictions") or []:
        if isinstance(prediction, dict):
            found.update(str(v) for v in (prediction.get("revisions") or {}).values())
    return frozenset(found)
