"""Every numbered example applies cleanly, becomes Healthy on KServe under the operator, and
serves requests from exactly what KServe's Deployments would run."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec
from pipeline_operator.validation import validate
from tests import pipelines as p
from tests.dataplane.harness import Baseline
from tests.harness import Cluster
from tests.harness.models import CORPUS, build_example_models
from tests.harness.operator_process import OperatorProcess
from tests.harness.serving import LocalServing
from tests.support import wait_for

EXAMPLES = sorted((Path(__file__).parents[2] / "manifests" / "examples").glob("*/pipeline.yaml"))


def test_there_are_examples_for_each_composition() -> None:
    assert [e.parent.name for e in EXAMPLES] == [
        "01-text-classifier",
        "02-ensemble",
        "03-cascade",
        "04-retrieval",
    ]
    for example in EXAMPLES:
        assert (example.parent / "README.md").exists()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.parent.name)
def test_example_is_valid(example: Path) -> None:
    spec = InferencePipelineSpec.model_validate(yaml.safe_load(example.read_text())["spec"])
    assert validate(spec) == []


@pytest.mark.cluster
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.parent.name)
def test_example_becomes_healthy_on_the_cluster(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    example: Path,
) -> None:
    body = yaml.safe_load(example.read_text())
    body["metadata"]["namespace"] = namespace
    p.apply(cluster, body)
    name = body["metadata"]["name"]
    st = p.wait_status(cluster, namespace, name, f"{name} Healthy", phase="Healthy")
    stages = len(body["spec"]["stages"])
    assert st["ready"] == f"{stages}/{stages}"
    assert len(p.children(cluster, namespace, "inferenceservices")) == stages


def example(name: str, namespace: str) -> dict:
    path = next(e for e in EXAMPLES if e.parent.name == name)
    body = yaml.safe_load(path.read_text())
    body["metadata"]["namespace"] = namespace
    return dict(body)


def new_model(body: dict, stage: int = 0) -> dict:
    """The same pipeline with the stage's model moved to a new version directory."""
    container = body["spec"]["stages"][stage]["predictor"]["container"]
    container["storageUri"] += "-next"
    return body


@pytest.mark.cluster
def test_canary_rollout_of_the_text_classifier_completes(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    body = example("01-text-classifier", namespace)
    body["spec"]["rollout"]["canary"]["steps"][1] = {"pause": {"duration": "2s"}}
    p.apply(cluster, body)
    stable = p.wait_status(cluster, namespace, "text-classifier", "v1 Healthy", phase="Healthy")
    p.apply(cluster, new_model(body))
    st = p.wait_status(
        cluster, namespace, "text-classifier", "the canary at 50%", phase="Paused", canaryWeight=50
    )
    assert p.traffic(cluster, namespace, "text-classifier") == {
        stable["stableRevision"]: 50,
        st["canaryRevision"]: 50,
    }
    p.command(cluster, namespace, "text-classifier", "promote", "1")
    done = p.wait_status(
        cluster,
        namespace,
        "text-classifier",
        "the canary promoted",
        phase="Healthy",
        stableRevision=st["canaryRevision"],
    )
    assert done["ready"] == "1/1"


@pytest.mark.cluster
def test_blue_green_rollout_of_the_cascade_completes(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    body = example("03-cascade", namespace)
    body["spec"]["rollout"]["blueGreen"] = {"autoPromotionSeconds": 1, "scaleDownDelaySeconds": 1}
    p.apply(cluster, body)
    blue = p.wait_status(cluster, namespace, "cascade", "blue Healthy", phase="Healthy")
    p.apply(cluster, new_model(body, stage=1))
    green = wait_for(
        lambda: (
            (s := p.status(cluster, namespace, "cascade")).get("stableRevision")
            != blue["stableRevision"]
            and s.get("phase") == "Healthy"
            and not s.get("previousRevision")
            and s
        ),
        90,
        "green promoted automatically and blue scaled down",
    )
    assert green["ready"] == "2/2"
    revisions = {
        s["metadata"]["labels"]["pipelines.inference.dev/revision"]
        for s in p.children(cluster, namespace, "inferenceservices")
    }
    wait_for(
        lambda: (
            {
                s["metadata"]["labels"]["pipelines.inference.dev/revision"]
                for s in p.children(cluster, namespace, "inferenceservices")
            }
            == {green["stableRevision"]}
        ),
        60,
        f"only green's services left (had {revisions})",
    )


# -- serving: what KServe's Deployments run, as local processes, behind KServe's router ------

TEXTS = [*CORPUS, *(f"{a} but {b}" for a in CORPUS[:4] for b in CORPUS[8:])]


@pytest.fixture(scope="session")
def example_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_example_models(tmp_path_factory.mktemp("models"))


def predict(serving: LocalServing, instances: list) -> dict:
    with serving.gate.request():
        response = httpx.post(serving.url, json={"instances": instances}, timeout=60)
    assert response.status_code == 200, response.text
    return dict(response.json())


def check_text_classifier(serving: LocalServing, models: dict[str, Path]) -> None:
    baseline = Baseline(models["pvc://models/sentiment-v1"])
    answer = predict(serving, TEXTS)["predictions"]
    for prediction, (label, score) in zip(answer, baseline.top1(TEXTS), strict=True):
        assert (prediction["label"], len(prediction["labels"])) == (label, 3)
        assert prediction["score"] == pytest.approx(score, abs=1e-4)


def check_ensemble(serving: LocalServing, models: dict[str, Path]) -> None:
    bert = Baseline(models["pvc://models/bert-sentiment"]).probabilities(TEXTS)
    roberta = Baseline(models["pvc://models/roberta-sentiment"]).probabilities(TEXTS)
    answer = predict(serving, TEXTS)
    assert answer["members"] == ["bert", "roberta"]
    for prediction, a, b in zip(answer["predictions"], bert, roberta, strict=True):
        mean = [(x + y) / 2 for x, y in zip(a, b, strict=True)]
        assert prediction["probabilities"] == pytest.approx(mean, abs=1e-4)


def check_cascade(serving: LocalServing, models: dict[str, Path]) -> None:
    small = Baseline(models["pvc://models/distilbert"])
    large = Baseline(models["pvc://models/deberta-large"])
    escalated = 0
    for text, (small_label, small_score), (large_label, large_score) in zip(
        TEXTS, small.top1(TEXTS), large.top1(TEXTS), strict=True
    ):
        [prediction] = predict(serving, [text])["predictions"]
        answered_by = {key.split("/")[0].split("-")[1] for key in prediction["revisions"]}
        if small_score < 0.9:  # unsure: the large model answers, from the original text
            escalated += 1
            assert answered_by == {"large"}, (text, prediction)
            assert (prediction["label"], prediction["score"]) == (
                large_label,
                pytest.approx(large_score, abs=1e-4),
            )
        else:
            assert answered_by == {"small"}, (text, prediction)
            assert prediction["confident"] is True and prediction["label"] == small_label
    assert 0 < escalated < len(TEXTS), "the cascade needs both kinds of answers to test"


def check_retrieval(serving: LocalServing, models: dict[str, Path]) -> None:
    questions = [CORPUS[3], CORPUS[7]]
    answer = predict(serving, questions)["predictions"]
    for question, prediction in zip(questions, answer, strict=True):
        [best, *rest] = prediction["documents"]
        assert best["text"] == question and best["score"] == pytest.approx(1.0, abs=1e-4)
        assert len(rest) == 2 and all(d["score"] < best["score"] for d in rest)


README = Path(__file__).parents[2] / "README.md"


def readme_pipeline() -> dict:
    """The pipeline of the README's first YAML snippet."""
    text = README.read_text()
    snippet = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    return dict(yaml.safe_load(snippet))


CHECKS = {
    "01-text-classifier": check_text_classifier,
    "02-ensemble": check_ensemble,
    "03-cascade": check_cascade,
    "04-retrieval": check_retrieval,
}


@pytest.mark.cluster
@pytest.mark.local_only
@pytest.mark.router
@pytest.mark.parametrize(
    "example", [*EXAMPLES, README], ids=lambda e: "README" if e == README else e.parent.name
)
def test_example_serves_what_kserve_would_run(
    cluster: Cluster,
    namespace: str,
    operator: OperatorProcess,
    example: Path,
    example_models: dict[str, Path],
    tmp_path: Path,
) -> None:
    body = readme_pipeline() if example == README else yaml.safe_load(example.read_text())
    body["metadata"]["namespace"] = namespace
    p.apply(cluster, body)
    name = body["metadata"]["name"]
    p.wait_status(cluster, namespace, name, f"{name} Healthy", timeout=120, phase="Healthy")
    with LocalServing(cluster, namespace, example_models, tmp_path / "serving", name) as serving:
        check = check_text_classifier if example == README else CHECKS[example.parent.name]
        check(serving, example_models)
        assert serving.error is None
