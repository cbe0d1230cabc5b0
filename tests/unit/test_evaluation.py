"""The evaluation job (evaluation/pipeline_evaluation) against real HTTP servers: a local
``http.server`` in a thread plays the stable and the canary revision."""

from __future__ import annotations

import io
import json
import math
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pipeline_evaluation.answers import label_text, predicted_labels
from pipeline_evaluation.cli import main
from pipeline_evaluation.errors import AnswerError
from pipeline_evaluation.report import (
    REPORT_LIMIT,
    Tally,
    Target,
    Thresholds,
    build_report,
    render,
)

ROOT = Path(__file__).resolve().parents[2]
LABELS = ("negative", "positive")


def truth(text: str) -> str:
    """The expected label of the set's input ``text`` (``t<i>``)."""
    return LABELS[int(text[1:]) % 2]


def other(label: str) -> str:
    return LABELS[1 - LABELS.index(label)]


def answer_v1(label_of: Callable[[str], str]) -> Callable[[list[Any]], Any]:
    """A revision answering as the kit's tokenizer transformer does (v1)."""

    def answer(instances: list[Any]) -> Any:
        predictions = []
        for text in instances:
            label = label_of(text)
            predictions.append(
                {
                    "label": label,
                    "score": 0.9,
                    "labels": [label, other(label)],
                    "scores": [0.9, 0.1],
                }
            )
        return {"predictions": predictions}

    return answer


def wrong_on(*indices: int) -> Callable[[str], str]:
    """Labels right except for the inputs of these indices."""
    return lambda text: other(truth(text)) if int(text[1:]) in indices else truth(text)


@dataclass
class Revision:
    """What one path of the server answers: scripted statuses first, then ``answer`` (JSON,
    or bytes as they are)."""

    answer: Callable[[list[Any]], Any]
    statuses: list[int] = field(default_factory=list)
    requests: list[list[Any]] = field(default_factory=list)


class Revisions:
    """A real HTTP server, one :class:`Revision` per first path segment."""

    def __init__(self, **paths: Revision) -> None:
        self.paths = {f"/{name}" if name != "root" else "/": rev for name, rev in paths.items()}
        self.headers: list[dict[str, str]] = []
        revisions = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                revisions.headers.append(dict(self.headers))
                first = self.path.split("?")[0].strip("/").split("/")[0]
                revision = revisions.paths.get(f"/{first}")
                if revision is None:
                    self.reply(404, {"error": f"no route {self.path}"})
                    return
                revision.requests.append(body["instances"])
                if revision.statuses:
                    self.reply(revision.statuses.pop(0), {"error": "model clf is not ready"})
                    return
                self.reply(200, revision.answer(body["instances"]))

            def reply(self, status: int, body: Any) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> Revisions:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Revisions]]:
    started: list[Revisions] = []

    def start(**paths: Revision) -> Revisions:
        started.append(Revisions(**paths).__enter__())
        return started[-1]

    yield start
    for server in started:
        server.__exit__()


def labelled(tmp_path: Path, count: int, label: Callable[[str], str] = truth) -> Path:
    path = tmp_path / "set.jsonl"
    lines = [json.dumps({"input": f"t{i}", "label": label(f"t{i}")}) for i in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout.splitlines()[-1]))


def evaluate(
    labelled_set: Path, *flags: str, env: dict[str, str] | None = None, **urls: str
) -> Outcome:
    argv = ["--labelled", str(labelled_set), "--backoff", "0.01", *flags]
    for side, url in urls.items():
        argv += [f"--{side}-url", url]
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, env=env or {}, stdout=out, stderr=err)
    return Outcome(code, out.getvalue(), err.getvalue())


ALL_OFF = ("--max-accuracy-drop", "none", "--min-agreement", "none")


def test_accuracy_and_agreement_of_both_revisions(serve: Callable[..., Revisions], tmp_path):
    # Of 20: the stable is wrong on 1, the canary on 4 (one of them the stable's own mistake).
    server = serve(
        stable=Revision(answer_v1(wrong_on(3))), canary=Revision(answer_v1(wrong_on(3, 5, 7, 9)))
    )
    env = {
        "STABLE_URL": server.url("/stable"),
        "CANARY_URL": server.url("/canary"),
        "STABLE_REVISION": "r1",
        "CANARY_REVISION": "r2",
        "PIPELINE": "text-classifier",
        "NAMESPACE": "ml",
    }
    done = evaluate(labelled(tmp_path, 20), *ALL_OFF, env=env)
    assert done.code == 0, done.stdout
    report = done.report
    assert report["samples"] == 20 and report["passed"] is True and report["failed"] == []
    assert report["stable"] == {
        "url": env["STABLE_URL"],
        "revision": "r1",
        "accuracy": 0.95,
        "correct": 19,
    }
    assert report["canary"]["accuracy"] == 0.8 and report["canary"]["revision"] == "r2"
    assert report["agreement"] == 0.85
    assert (report["pipeline"], report["namespace"]) == ("text-classifier", "ml")
    assert report["thresholds"] == {
        "max_accuracy_drop": None,
        "min_agreement": None,
        "min_accuracy": None,
    }
    assert [d["line"] for d in report["disagreements"]] == [6, 8, 10]
    assert report["disagreements"][0] == {
        "line": 6,
        "label": "positive",
        "stable": "positive",
        "canary": "negative",
    }
    assert "batch 2/2: 20/20 samples" in done.stderr


def test_the_accuracy_drop_fails_the_canary(serve: Callable[..., Revisions], tmp_path) -> None:
    server = serve(
        stable=Revision(answer_v1(wrong_on(3))), canary=Revision(answer_v1(wrong_on(3, 5, 7, 9)))
    )
    urls = {"stable": server.url("/stable"), "canary": server.url("/canary")}
    done = evaluate(labelled(tmp_path, 20), "--min-agreement", "off", **urls)
    assert done.code == 1
    assert done.report["passed"] is False
    assert done.report["failed"] == ["canary accuracy 0.8 < stable 0.95 - 0.01"]
    assert done.report["thresholds"]["max_accuracy_drop"] == 0.01
    # Within the allowed drop it passes.
    assert (
        evaluate(
            labelled(tmp_path, 20), "--min-agreement", "off", "--max-accuracy-drop", "0.15", **urls
        ).code
        == 0
    )


def test_a_canary_as_good_as_the_stable_passes_the_default_drop(
    serve: Callable[..., Revisions], tmp_path: Path
) -> None:
    # 0.96 - 0.01 is 0.95 in decimal, not quite in binary floating point: it still passes.
    server = serve(
        stable=Revision(answer_v1(wrong_on(1, 2, 3, 4))),
        canary=Revision(answer_v1(wrong_on(1, 2, 3, 4, 5))),
    )
    urls = {"stable": server.url("/stable"), "canary": server.url("/canary")}
    done = evaluate(labelled(tmp_path, 100), "--min-agreement", "off", **urls)
    assert (done.report["stable"]["accuracy"], done.report["canary"]["accuracy"]) == (0.96, 0.95)
    assert done.code == 0, done.report


def test_low_agreement_fails_the_canary(serve: Callable[..., Revisions], tmp_path: Path) -> None:
    # Equally accurate, but on different samples: agreement 0.8.
    server = serve(
        stable=Revision(answer_v1(wrong_on(0, 1))), canary=Revision(answer_v1(wrong_on(2, 3)))
    )
    urls = {"stable": server.url("/stable"), "canary": server.url("/canary")}
    done = evaluate(labelled(tmp_path, 20), **urls)
    assert done.code == 1
    assert done.report["failed"] == ["agreement 0.8 < 0.95"]
    assert evaluate(labelled(tmp_path, 20), "--min-agreement", "0.8", **urls).code == 0


def test_the_accuracy_floor_fails_the_canary(serve: Callable[..., Revisions], tmp_path) -> None:
    # Both revisions make the same mistakes: no drop, full agreement, but under the floor.
    server = serve(
        stable=Revision(answer_v1(wrong_on(0, 1, 2))), canary=Revision(answer_v1(wrong_on(0, 1, 2)))
    )
    urls = {"stable": server.url("/stable"), "canary": server.url("/canary")}
    assert evaluate(labelled(tmp_path, 10), **urls).code == 0  # no floor by default
    done = evaluate(labelled(tmp_path, 10), "--min-accuracy", "0.9", **urls)
    assert done.code == 1
    assert done.report["failed"] == ["canary accuracy 0.7 < 0.9"]
    assert done.report["thresholds"]["min_accuracy"] == 0.9


@pytest.mark.parametrize("word", ["none", "off", "OFF", "None"])
def test_none_or_off_disables_a_threshold(
    serve: Callable[..., Revisions], tmp_path: Path, word: str
) -> None:
    # The canary is wrong on every sample: every threshold would fail.
    server = serve(
        stable=Revision(answer_v1(truth)), canary=Revision(answer_v1(lambda t: other(truth(t))))
    )
    urls = {"stable": server.url("/stable"), "canary": server.url("/canary")}
    failing = evaluate(labelled(tmp_path, 4), "--min-accuracy", "0.5", **urls)
    assert failing.code == 1 and len(failing.report["failed"]) == 3
    flags = ("--max-accuracy-drop", word, "--min-agreement", word, "--min-accuracy", word)
    done = evaluate(labelled(tmp_path, 4), *flags, **urls)
    assert done.code == 0 and done.report["failed"] == []
    assert set(done.report["thresholds"].values()) == {None}


def test_a_503_is_retried_then_the_answer_counts(
    serve: Callable[..., Revisions], tmp_path: Path
) -> None:
    canary = Revision(answer_v1(truth), statuses=[503])
    server = serve(stable=Revision(answer_v1(truth)), canary=canary)
    urls = {"stable": server.url("/stable"), "canary": server.url("/canary")}
    done = evaluate(labelled(tmp_path, 4), "--retries", "2", **urls)
    assert done.code == 0, done.stdout
    assert done.report["canary"]["accuracy"] == 1.0
    assert len(canary.requests) == 2  # the 503, then its retry
    # Without retries the 503 is the evaluation's error, naming the URL and the status.
    canary.statuses = [503]
    done = evaluate(labelled(tmp_path, 4), "--retries", "0", **urls)
    assert done.code == 2
    error = done.report
    assert (error["url"], error["status"], error["side"]) == (urls["canary"], 503, "canary")
    assert "HTTP 503: model clf is not ready" in error["error"]


def test_retries_are_spent_then_the_error_says_how_many(
    serve: Callable[..., Revisions], tmp_path: Path
) -> None:
    canary = Revision(answer_v1(truth), statuses=[502, 503, 500, 500])
    server = serve(stable=Revision(answer_v1(truth)), canary=canary)
    urls = {"stable": server.url("/stable"), "canary": server.url("/canary")}
    done = evaluate(labelled(tmp_path, 4), "--retries", "2", **urls)
    assert done.code == 2
    assert len(canary.requests) == 3
    assert "HTTP 500: model clf is not ready after 3 attempts" in done.report["error"]


def test_a_4xx_is_not_retried(serve: Callable[..., Revisions], tmp_path: Path) -> None:
    canary = Revision(answer_v1(truth), statuses=[400])
    server = serve(stable=Revision(answer_v1(truth)), canary=canary)
    done = evaluate(
        labelled(tmp_path, 4), stable=server.url("/stable"), canary=server.url("/canary")
    )
    assert done.code == 2 and done.report["status"] == 400
    assert len(canary.requests) == 1


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_revision_is_an_error(
    serve: Callable[..., Revisions], tmp_path: Path
) -> None:
    server = serve(stable=Revision(answer_v1(truth)))
    canary = f"http://127.0.0.1:{closed_port()}/v1/models/clf:predict"
    done = evaluate(
        labelled(tmp_path, 4), "--retries", "1", stable=server.url("/stable"), canary=canary
    )
    assert done.code == 2
    error = done.report
    assert error["url"] == canary and error["side"] == "canary"
    assert error["error"].startswith(f"canary: POST {canary}: no connection")
    assert "after 2 attempts" in error["error"]
    assert "error: canary: POST" in done.stderr


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"input": "t2", "label": ', "not JSON"),
        ('["t2", "negative"]', "a JSON list, not an object"),
        ('{"input": "t2"}', "no 'label' key"),
        ('{"label": "negative"}', "no 'input' key"),
        ('{"input": "t2", "label": null}', "'label' is a null"),
        ('{"input": "t2", "label": ["a"]}', "'label' is a list"),
    ],
)
def test_a_bad_line_of_the_set_is_named(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(f'{{"input": "t0", "label": "negative"}}\n\n{line}\n')
    done = evaluate(path, stable="http://127.0.0.1:1/", canary="http://127.0.0.1:1/")
    assert done.code == 2
    assert f"{path} line 3: {problem}" in done.report["error"]


def test_blank_lines_are_skipped_and_labels_compare_as_strings(
    serve: Callable[..., Revisions], tmp_path: Path
) -> None:
    # Labels 1 and true in the set; the revisions answer "1" and true, 1.0 and "true".
    path = tmp_path / "set.jsonl"
    path.write_text(
        '\n{"input": "a", "label": 1}\r\n  \n{"input": "b", "label": true, "note": "x"}\n\n'
    )
    values = {"stable": ["1", True], "canary": [1.0, "true"]}
    server = serve(
        stable=Revision(lambda xs: {"predictions": values["stable"][: len(xs)]}),
        canary=Revision(lambda xs: {"predictions": values["canary"][: len(xs)]}),
    )
    done = evaluate(path, stable=server.url("/stable"), canary=server.url("/canary"))
    assert done.code == 0, done.stdout
    assert done.report["samples"] == 2 and done.report["agreement"] == 1.0


def test_batches_send_ceil_n_over_the_batch_size_requests(
    serve: Callable[..., Revisions], tmp_path: Path
) -> None:
    stable, canary = Revision(answer_v1(truth)), Revision(answer_v1(truth))
    server = serve(stable=stable, canary=canary)
    done = evaluate(
        labelled(tmp_path, 37),
        "--batch-size",
        "8",
        stable=server.url("/stable"),
        canary=server.url("/canary"),
    )
    assert done.code == 0
    for revision in (stable, canary):
        assert len(revision.requests) == math.ceil(37 / 8) == 5
        assert [len(r) for r in revision.requests] == [8, 8, 8, 8, 5]
        assert [x for r in revision.requests for x in r] == [f"t{i}" for i in range(37)]
    assert done.stderr.count("[evaluation] batch ") == 5


def test_a_url_without_a_path_is_posted_at_the_root(
    serve: Callable[..., Revisions], tmp_path: Path
) -> None:
    # What the operator passes: a revision graph's Service, http://<graph>.<namespace>.svc.
    root = Revision(answer_v1(truth))
    server = serve(root=root)
    url = server.url("")
    done = evaluate(labelled(tmp_path, 3), stable=url, canary=url + "/")
    assert done.code == 0, done.stdout
    assert len(root.requests) == 2
    assert done.report["stable"]["url"] == url + "/"


def test_credentials_in_a_url_are_sent_never_shown(
    serve: Callable[..., Revisions], tmp_path: Path
) -> None:
    server = serve(stable=Revision(answer_v1(truth)), canary=Revision(answer_v1(truth)))
    port = server.server.server_address[1]
    canary = f"http://user:s3cret@127.0.0.1:{port}/canary?token=t0ken"
    done = evaluate(labelled(tmp_path, 2), stable=server.url("/stable"), canary=canary)
    assert done.code == 0, done.stdout
    assert done.report["canary"]["url"] == f"http://127.0.0.1:{port}/canary?..."
    assert "s3cret" not in done.stdout + done.stderr and "t0ken" not in done.stdout + done.stderr
    assert "Basic dXNlcjpzM2NyZXQ=" in [h.get("Authorization") for h in server.headers]


@pytest.mark.parametrize("side", ["stable", "canary"])
def test_a_missing_url_names_its_flag_and_variable(tmp_path: Path, side: str) -> None:
    env = {"STABLE_URL": "http://127.0.0.1:1/", "CANARY_URL": "http://127.0.0.1:1/"}
    env[f"{side.upper()}_URL"] = ""
    done = evaluate(labelled(tmp_path, 1), env=env)
    assert done.code == 2
    assert done.report["error"] == (f"no {side} URL: pass --{side}-url or set {side.upper()}_URL")


@pytest.mark.parametrize(
    "flags",
    [
        ("--min-agreement", "1.5"),
        ("--max-accuracy-drop", "x"),
        ("--batch-size", "0"),
        ("--timeout", "0"),
        ("--retries", "-1"),
    ],
)
def test_a_bad_flag_is_an_error_report(tmp_path: Path, flags: tuple[str, str]) -> None:
    done = evaluate(labelled(tmp_path, 1), *flags, stable="http://a/", canary="http://b/")
    assert done.code == 2
    assert done.report["error"].startswith(f"argument {flags[0]}: {flags[1]!r} is not")


def test_an_answer_that_does_not_fit_the_request_is_an_error(
    serve: Callable[..., Revisions], tmp_path: Path
) -> None:
    server = serve(
        stable=Revision(answer_v1(truth)),
        canary=Revision(lambda xs: {"predictions": ["negative"] * (len(xs) - 1)}),
        string=Revision(lambda xs: "<html>"),
        html=Revision(lambda xs: b"<html><body>Bad gateway</body></html>"),
    )
    done = evaluate(
        labelled(tmp_path, 3), stable=server.url("/stable"), canary=server.url("/canary")
    )
    assert done.code == 2
    assert "the answer has 2 predictions for 3 instances" in done.report["error"]
    assert "(samples of lines 1-3)" in done.report["error"]
    done = evaluate(
        labelled(tmp_path, 3), stable=server.url("/stable"), canary=server.url("/string")
    )
    assert done.code == 2 and "a JSON str, not an object" in done.report["error"]
    done = evaluate(labelled(tmp_path, 3), stable=server.url("/stable"), canary=server.url("/html"))
    assert done.code == 2 and done.report["status"] == 200
    assert "HTTP 200, not JSON: '<html><body>Bad gateway</body></html>'" in done.report["error"]


def test_the_report_stays_within_1024_bytes(serve: Callable[..., Revisions], tmp_path) -> None:
    # Long labels, long revision names and URLs, every threshold failing.
    long = [("label-" + "é" * 600 + "-%d") % i for i in range(2)]
    path = tmp_path / "set.jsonl"
    path.write_text(
        "\n".join(json.dumps({"input": f"t{i}", "label": long[i % 2]}) for i in range(40))
    )
    server = serve(
        stable=Revision(lambda xs: {"predictions": [long[int(x[1:]) % 2] for x in xs]}),
        canary=Revision(lambda xs: {"predictions": [long[1 - int(x[1:]) % 2] for x in xs]}),
    )
    env = {"STABLE_REVISION": "r" * 300, "CANARY_REVISION": "c" * 300, "PIPELINE": "p" * 300}
    done = evaluate(
        path,
        "--min-accuracy",
        "0.99",
        env=env,
        stable=server.url("/stable?" + "q" * 900),
        canary=server.url("/canary/" + "x" * 900),
    )
    assert done.code == 1
    last = done.stdout.splitlines()[-1]
    assert len(last.encode()) <= REPORT_LIMIT
    report = json.loads(last)
    assert report["passed"] is False and len(report["failed"]) == 3
    assert report["truncated"] is True
    assert report["samples"] == 40 and report["canary"]["accuracy"] == 0


def test_a_report_of_many_failures_is_shortened() -> None:
    tally = Tally()
    for line in range(1, 11):
        tally.add(line, "x" * 2000, "y" * 2000, "z" * 2000)
    report = build_report(
        tally, Target("http://s/" + "s" * 3000), Target("http://c/"), Thresholds()
    )
    report["failed"] = [f"failure {i}: " + "f" * 100 for i in range(200)]
    text = render(report)
    assert len(text.encode()) <= REPORT_LIMIT
    shortened = json.loads(text)
    assert shortened["passed"] is False and shortened["truncated"] is True
    assert shortened["samples"] == 10
    # Long labels alone: the disagreements stay, shortened.
    tally = Tally()
    for line in range(1, 11):
        tally.add(line, "x" * 2000, "y" * 2000, "z" * 2000)
    report = build_report(tally, Target("http://s/"), Target("http://c/"), Thresholds())
    shortened = json.loads(render(report))
    assert shortened["truncated"] is True and len(shortened["disagreements"]) == 3
    assert shortened["disagreements"][0]["stable"] == "y" * 37 + "..."
    assert shortened["stable"] == report["stable"] and shortened["failed"] == report["failed"]
    # A report that fits is left as it is.
    small = build_report(Tally(), Target("http://s/"), Target("http://c/"), Thresholds())
    assert json.loads(render(small)) == small


# The kit's answers, as the repo's stages build them: transformers_/pipeline_transformers/
# codecs.py (classification_v1/_v2: the text-classifier example's answer through its graph),
# predictors/pipeline_predictors/classifier/model.py (format_v1/_v2), aggregator/model.py.
TRANSFORMER_V1 = {
    "predictions": [
        {
            "label": "positive",
            "score": 0.93,
            "labels": ["positive", "negative", "neutral"],
            "scores": [0.93, 0.05, 0.02],
            "revisions": {"clf/transformer": "r2", "clf/predictor": "r2"},
        },
        {"label": "negative", "score": 0.6, "labels": ["negative"], "scores": [0.6]},
    ]
}
CLASSIFIER_V1 = {
    "predictions": [
        {"label": "neg", "score": 0.7, "probabilities": [0.7, 0.3], "logits": [1.0, 0.1]},
        {"label": "pos", "score": 0.8, "probabilities": [0.2, 0.8], "logits": [0.0, 1.4]},
    ]
}
TRANSFORMER_V2 = {
    "model_name": "clf",
    "outputs": [
        {
            "name": "label",
            "datatype": "BYTES",
            "shape": [2, 2],
            "data": ["pos", "neg", "neg", "pos"],
        },
        {"name": "score", "datatype": "FP32", "shape": [2, 2], "data": [0.9, 0.1, 0.8, 0.2]},
    ],
}
CLASSIFIER_V2 = {
    "outputs": [
        {"name": "logits", "datatype": "FP32", "shape": [2, 2], "data": [1.0, 0.0, 0.0, 1.0]},
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["pos", "neg"]},
    ]
}


@pytest.mark.parametrize(
    ("answer", "labels"),
    [
        (TRANSFORMER_V1, ["positive", "negative"]),
        (CLASSIFIER_V1, ["neg", "pos"]),
        (TRANSFORMER_V2, ["pos", "neg"]),
        (CLASSIFIER_V2, ["pos", "neg"]),
        ({"predictions": ["a", 3]}, ["a", "3"]),
        ({"predictions": [{"labels": ["b", "a"]}, {"scores": {"a": 0.2, "b": 0.8}}]}, ["b", "b"]),
        ({"predictions": [{"pos": 0.1, "neg": 0.9}, [0.1, 0.7, 0.2]]}, ["neg", "1"]),
        ({"predictions": [{"probabilities": [0.6, 0.4]}, 2.0]}, ["0", "2"]),
        (
            {
                "outputs": [
                    {"name": "probs", "datatype": "FP32", "shape": [1, 3], "data": [0.1, 0.2, 0.7]}
                ]
            },
            ["2"],
        ),
        (
            {"outputs": [{"name": "y", "datatype": "INT64", "shape": [2], "data": [1, 0]}]},
            ["1", "0"],
        ),
    ],
)
def test_the_predicted_label_of_each_answer_shape(answer: Any, labels: list[str]) -> None:
    assert predicted_labels(answer, len(labels)) == labels


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"error": "model clf is not ready"}, "no predictions or outputs list"),
        ({"predictions": [{"score": 0.9}]}, "prediction 0: a prediction has no label"),
        ({"predictions": [None]}, "prediction 0: a prediction is a null"),
        ({"outputs": [{"name": "a"}, {"name": "b"}]}, "no output named 'label'"),
        ({"outputs": [{"name": "label", "shape": [1], "parameters": {}}]}, "no JSON data"),
        ({"outputs": [{"name": "label", "shape": [2], "data": ["a"]}]}, "1 values for shape"),
        ([1, 2], "a JSON list, not an object"),
    ],
)
def test_an_answer_without_labels_says_why(answer: Any, problem: str) -> None:
    with pytest.raises(AnswerError, match=problem.replace("(", r"\(")):
        predicted_labels(answer, 1)


def test_the_transformers_own_answer_is_read() -> None:
    """The text-classifier's answer as the tokenizer transformer builds it (v1)."""
    codecs = pytest.importorskip("pipeline_transformers.codecs")
    results = [codecs.LabelScores(("pos", "neg"), (0.9, 0.1)), codecs.LabelScores(("neg",), (1,))]
    answer = json.loads(json.dumps(codecs.classification_v1(results, [{"clf/predictor": "r"}, {}])))
    assert predicted_labels(answer, 2) == ["pos", "neg"]


@pytest.mark.parametrize(
    ("value", "text"),
    [("a", "a"), (1, "1"), (1.0, "1"), (1.5, "1.5"), (True, "true"), (False, "false")],
)
def test_labels_compare_in_string_form(value: object, text: str) -> None:
    assert label_text(value) == text


def test_python_m_pipeline_evaluation_runs_the_job(
    serve: Callable[..., Revisions], tmp_path: Path
) -> None:
    server = serve(stable=Revision(answer_v1(truth)), canary=Revision(answer_v1(wrong_on(0))))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "evaluation"),
        "STABLE_URL": server.url("/stable"),
        "CANARY_URL": server.url("/canary"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipeline_evaluation", "--labelled", str(labelled(tmp_path, 4))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["failed"] == [
        "canary accuracy 0.75 < stable 1 - 0.01",
        "agreement 0.75 < 0.95",
    ]
    assert done.stderr.startswith("[evaluation] 4 samples from ")
