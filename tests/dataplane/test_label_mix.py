"""Each revision's label mix, as a real Prometheus scrapes it from two classifier processes:
the documented population-stability query gives the PSI of the answers the models gave."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dataplane.harness import Stage, stage, start_all
from tests.harness.models import CORPUS
from tests.harness.processes import wait_until
from tests.harness.prometheus import Prometheus, Target

from .conftest import Models

pytestmark = pytest.mark.dataplane

DOC = Path(__file__).parents[2] / "docs" / "dataplane.md"
TEXTS = [*CORPUS, *(f"{a} but {b}" for a in CORPUS for b in CORPUS[:6])]
EPSILON = 0.001  # the query's, against empty shares


def documented_query() -> str:
    """The PSI query of docs/dataplane.md, as a user copies it."""
    found = re.search(r"<!-- label-mix-psi -->\n```promql\n(.*?)\n```", DOC.read_text(), re.S)
    assert found, "docs/dataplane.md lost its label-mix query"
    return found.group(1)


def psi(canary: Counter[str], stable: Counter[str]) -> float:
    labels = set(canary) | set(stable)
    c = {k: canary[k] / sum(canary.values()) for k in labels}
    s = {k: stable[k] / sum(stable.values()) for k in labels}
    return sum((c[k] - s[k]) * math.log((c[k] + EPSILON) / (s[k] + EPSILON)) for k in labels)


@pytest.fixture
def classifiers(models: Models, log_dir: Path) -> Iterator[dict[str, Stage]]:
    """Revision r1 and r2 of stage ``classifier`` of pipeline ``demo``, one process each."""
    identity = {"INFERENCE_PIPELINE": "demo", "INFERENCE_PIPELINE_STAGE": "classifier"}
    built = {
        revision: stage(
            f"label-mix-{revision}",
            "pipeline_predictors.classifier",
            ["--model_dir", str(model), "--revision", revision, "--num_threads", "1"],
            log_dir,
            model_name="clf",
            env=identity,
        )
        for revision, model in (("r1", models.model_r1), ("r2", models.model_r2))
    }
    start_all(list(built.values()))
    try:
        yield built
    finally:
        for s in built.values():
            s.stop()


def test_the_label_mix_query_measures_how_far_two_revisions_answers_are_apart(
    classifiers: dict[str, Stage], tmp_path: Path
) -> None:
    from tests.harness import ToolSet

    with Prometheus(ToolSet.ensure(), tmp_path / "prometheus") as prometheus:
        prometheus.scrape(Target(f"127.0.0.1:{s.port}", {}) for s in classifiers.values())
        # Every label is exported from load: both mixes are complete from the first scrape.
        wait_until(
            lambda: len(prometheus.query('pipeline_stage_predictions_total{pipeline="demo"}')) == 6,
            30,
            "three labels of each revision to be scraped",
        )
        answered = {revision: Counter[str]() for revision in classifiers}
        for revision, server in classifiers.items():
            for text in TEXTS:
                r = httpx.post(server.v1_url, json={"instances": [text]}, timeout=30)
                r.raise_for_status()
                answered[revision][r.json()["predictions"][0]["label"]] += 1

        def scraped_all() -> bool:
            totals = prometheus.query(
                'sum by (revision) (pipeline_stage_predictions_total{pipeline="demo"})'
            )
            return all(float(t["value"][1]) == len(TEXTS) for t in totals)

        wait_until(scraped_all, 30, "every prediction to be scraped")
        expected = psi(answered["r2"], answered["r1"])
        assert expected > 0.01, f"the two models answered alike: {answered}"
        query = (
            documented_query()
            .replace("{{pipeline}}", "demo")
            .replace("{{revision}}", "r2")
            .replace("{{stable}}", "r1")
        )
        (measured,) = prometheus.query(query)
        assert float(measured["value"][1]) == pytest.approx(expected, rel=1e-6)
        (same,) = prometheus.query(query.replace('revision="r2"', 'revision="r1"'))
        assert float(same["value"][1]) == pytest.approx(0.0, abs=1e-12)
