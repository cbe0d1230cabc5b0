"""KServe's own InferenceGraph router in front of local stage processes.

The graphs are rendered by the operator's planner from an InferencePipeline spec and rollout
status, exactly as the operator would write them; only the ``serviceName`` steps (which name
InferenceServices) are rewritten into ``serviceUrl`` steps pointing at the local processes.
The router listens on its fixed port 8080, so these tests start one router at a time.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import Stages
from .harness import CORPUS, Baseline, rendered_graph, router
from .test_stages import read_spans

pytestmark = [pytest.mark.dataplane, pytest.mark.router]

TIMEOUT = 30.0


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, json=body, headers=headers, timeout=TIMEOUT)


def test_sequence_tokenizer_then_classifier_matches_the_baseline(
    stages: Stages, baseline: Baseline, router_binary: Path, log_dir: Path
) -> None:
    spec = rendered_graph(
        {"r1": {"tok": stages.tokenizer_r1.v1_url, "clf": stages.classifier_r1.v1_url}},
        {"r1": 100},
    )
    trace_id = secrets.token_hex(16)
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    with router(router_binary, spec, log_dir) as url:
        r = post(url, {"instances": CORPUS}, headers)
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    for pred, expected in zip(predictions, baseline.probabilities(CORPUS), strict=True):
        assert pred["probabilities"] == pytest.approx(expected, abs=1e-5)
        assert pred["label"] == baseline.labels[expected.index(max(expected))]
        assert pred["revisions"] == {"tok/transformer": "r1", "clf/predictor": "r1"}
    # The router forwards traceparent (PROPAGATE_HEADERS): the classifier joined the trace.
    spans = [
        s for s in read_spans(stages.trace_dir / "classifier-r1.jsonl") if s["trace_id"] == trace_id
    ]
    assert any(s["name"] == "predictor clf" for s in spans)


def test_sequence_to_a_stage_with_transformer_matches_the_baseline(
    stages: Stages, baseline: Baseline, router_binary: Path, log_dir: Path
) -> None:
    spec = rendered_graph({"r1": {"classify": stages.transformer_r1.v1_url}}, {"r1": 100})
    with router(router_binary, spec, log_dir) as url:
        r = post(url, {"instances": CORPUS[:6]})
    assert r.status_code == 200, r.text
    got = [(p["label"], p["score"]) for p in r.json()["predictions"]]
    for (label, score), (want_label, want_score) in zip(
        got, baseline.top1(CORPUS[:6]), strict=True
    ):
        assert label == want_label
        assert score == pytest.approx(want_score, abs=1e-5)


def test_splitter_90_10_splits_whole_pipelines_within_bounds(
    stages: Stages, router_binary: Path, log_dir: Path
) -> None:
    spec = rendered_graph(
        {
            "r1": {"tok": stages.tokenizer_r1.v1_url, "clf": stages.classifier_r1.v1_url},
            "r2": {"tok": stages.tokenizer_r2.v1_url, "clf": stages.classifier_r2.v1_url},
        },
        {"r1": 90, "r2": 10},
    )
    assert spec["nodes"]["root"]["routerType"] == "Splitter"
    n, p = 1000, 0.9
    texts = [CORPUS[i % len(CORPUS)] for i in range(n)]
    with router(router_binary, spec, log_dir) as url, httpx.Client(timeout=TIMEOUT) as client:

        def one(text: str) -> dict[str, str] | str:
            try:
                r = client.post(url, json={"instances": [text]})
            except httpx.HTTPError as exc:
                return f"transport error: {exc!r}"
            if r.status_code != 200:
                return f"HTTP {r.status_code}: {r.text[:200]}"
            revisions: dict[str, str] = r.json()["predictions"][0]["revisions"]
            return revisions

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, texts))
    failures = [r for r in results if isinstance(r, str)]
    assert not failures, f"{len(failures)} of {n} requests failed, e.g. {failures[:3]}"
    served = [r for r in results if isinstance(r, dict)]
    mixed = [r for r in served if len(set(r.values())) != 1]
    assert not mixed, f"requests that mixed revisions: {mixed[:3]}"
    counts = Counter(r["clf/predictor"] for r in served)
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(counts["r1"] - n * p) <= 3 * sigma, f"{counts} is not 90/10 within 3 sigma"
    assert counts["r1"] + counts["r2"] == n


def test_ensemble_aggregates_member_probabilities(
    stages: Stages,
    baseline: Baseline,
    baseline_r2: Baseline,
    router_binary: Path,
    log_dir: Path,
) -> None:
    graph = {
        "root": "main",
        "nodes": [
            {"name": "main", "steps": [{"node": "fan"}, {"stage": "agg"}]},
            {"name": "fan", "type": "Ensemble", "steps": [{"stage": "a"}, {"stage": "b"}]},
        ],
    }
    urls = {
        "a": stages.classifier_r1.v1_url,
        "b": stages.classifier_r2.v1_url,
        "agg": stages.aggregator.v1_url,
    }
    spec = rendered_graph({"r1": urls}, {"r1": 100}, graph)
    texts = CORPUS[:5]
    with router(router_binary, spec, log_dir) as url:
        r = post(url, {"instances": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(body["members"]) == ["a", "b"]
    for pred, pa, pb in zip(
        body["predictions"],
        baseline.probabilities(texts),
        baseline_r2.probabilities(texts),
        strict=True,
    ):
        mean = [(x + y) / 2 for x, y in zip(pa, pb, strict=True)]
        assert pred["probabilities"] == pytest.approx(mean, abs=1e-5)
        assert pred["label"] == baseline.labels[mean.index(max(mean))]
        assert pred["revisions"] == {"clf/predictor": pred["revisions"]["clf/predictor"]}


def test_switch_routes_by_condition(stages: Stages, router_binary: Path, log_dir: Path) -> None:
    graph = {
        "root": "main",
        "nodes": [
            {
                "name": "main",
                "type": "Switch",
                "steps": [
                    {"stage": "french", "condition": 'instances.#(lang=="fr")'},
                    {"stage": "english", "condition": 'instances.#(lang=="en")'},
                ],
            }
        ],
    }
    urls = {"french": stages.classifier_r2.v1_url, "english": stages.classifier_r1.v1_url}
    spec = rendered_graph({"r1": urls}, {"r1": 100}, graph)
    with router(router_binary, spec, log_dir) as url:
        fr = post(url, {"instances": [{"text": "le service est rapide", "lang": "fr"}]})
        en = post(url, {"instances": [{"text": "the service is fast", "lang": "en"}]})
        none = post(url, {"instances": [{"text": "der Dienst", "lang": "de"}]})
    assert fr.status_code == 200, fr.text
    assert en.status_code == 200, en.text
    assert fr.json()["predictions"][0]["revisions"] == {"clf/predictor": "r2"}
    assert en.json()["predictions"][0]["revisions"] == {"clf/predictor": "r1"}
    # No route: the Switch answers 404, which the planner's root Splitter relays as a 500.
    assert none.status_code in (404, 500)
    assert "None of the routes matched" in none.text


def test_router_relays_a_stage_rejection(
    stages: Stages, router_binary: Path, log_dir: Path
) -> None:
    spec = rendered_graph({"r1": {"classify": stages.transformer_r1.v1_url}}, {"r1": 100})
    with router(router_binary, spec, log_dir) as url:
        bad = post(url, {"instances": [12]})
        good = post(url, {"instances": ["fine"]})
    assert bad.status_code == 400
    assert "instance 0: expected a string" in bad.text
    assert good.status_code == 200
