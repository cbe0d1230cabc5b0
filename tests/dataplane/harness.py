"""Local data-plane harness: tiny models built on the spot, stage processes, KServe's router.

Used by the data-plane tests and by ``bench/dataplane.py``. Nothing here reaches a model hub:
the tokenizer is trained on a small corpus and the model is built from a config with a fixed
seed. Every wait has a deadline and says what it waited for; every process started is killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pipeline_operator.api.v1alpha1 import InferencePipelineSpec, InferencePipelineStatus
from pipeline_operator.core import naming
from pipeline_operator.core.planner import Owner, plan
from tests.harness.models import (
    CORPUS,
    LABELS,
    build_classifier,
    build_models,
    build_tokenizer,
)
from tests.harness.processes import free_port

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[2]
ROUTER_PORT = 8080  # fixed in KServe's router (constants.RouterPort); not configurable
ROUTER_LOCK = Path(tempfile.gettempdir()) / "inference-pipelines-router-8080.lock"


def offline_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


class Baseline:
    """The same tokenizer and model in one process: what the pipeline must reproduce."""

    def __init__(self, model_dir: Path) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), local_files_only=True
        ).eval()
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def probabilities(self, texts: Sequence[str]) -> list[list[float]]:
        """Softmax of the logits, one text at a time (no padding, no batching)."""
        out = []
        with self._torch.inference_mode():
            for text in texts:
                enc = self.tokenizer(text, return_tensors="pt")
                logits = self.model(**enc).logits.double()
                out.append(self._torch.softmax(logits, dim=-1)[0].tolist())
        return out

    def top1(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        result = []
        for probs in self.probabilities(texts):
            best = max(range(len(probs)), key=lambda i: probs[i])
            result.append((self.labels[best], probs[best]))
        return result


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, alive: Callable[[], str | None]
) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` s or if ``alive`` reports a death."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = alive()
        if dead:
            raise RuntimeError(f"gave up waiting for {what}: {dead}")
        with contextlib.suppress(httpx.HTTPError, OSError):
            if check():
                return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")


@dataclass
class Process:
    """A child process with its log file; :meth:`stop` kills it and its process group."""

    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=offline_env(self.env),
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        log.close()
        return self

    def died(self) -> str | None:
        if self.popen is not None and self.popen.poll() is not None:
            return f"{self.name} exited with {self.popen.returncode}; log:\n{self.log_tail()}"
        return None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


@dataclass
class Stage(Process):
    """A KServe model server process on 127.0.0.1."""

    model_name: str = "model"
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1_url(self) -> str:
        return f"{self.url}/v1/models/{self.model_name}:predict"

    @property
    def v2_url(self) -> str:
        return f"{self.url}/v2/models/{self.model_name}/infer"

    def wait_ready(self, timeout: float = 120.0) -> Stage:
        def ready() -> bool:
            r = httpx.get(f"{self.url}/v2/models/{self.model_name}/ready", timeout=2.0)
            return r.status_code == 200

        wait_until(ready, timeout, f"{self.name} to be ready at {self.url}", self.died)
        return self


def stage(
    name: str,
    module: str,
    args: Sequence[str],
    log_dir: Path,
    model_name: str = "model",
    env: Mapping[str, str] | None = None,
) -> Stage:
    """A stage process (not started): ``python -m module --model_name ... --http_port ...``."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        module,
        "--model_name",
        model_name,
        "--http_port",
        str(port),
        "--enable_grpc",
        "false",
        "--enable_latency_logging",
        "false",
        *args,
    ]
    return Stage(
        name=name,
        argv=argv,
        log_path=log_dir / f"{name}.log",
        env=dict(env or {}),
        model_name=model_name,
        port=port,
    )


def start_all(stages: Sequence[Stage], timeout: float = 180.0) -> None:
    """Start stages in parallel and wait for all to be ready (killing all on failure)."""
    try:
        for s in stages:
            s.start()
        for s in stages:
            s.wait_ready(timeout)
    except BaseException:
        for s in stages:
            s.stop()
        raise


@contextlib.contextmanager
def router(
    binary: Path, graph_spec: Mapping[str, Any], log_dir: Path, timeout: float = 30.0
) -> Iterator[str]:
    """KServe's InferenceGraph router on its fixed port 8080, serving ``graph_spec``.

    The port cannot be chosen, so routers run one at a time: an exclusive lock file serializes
    them across processes, and a port already taken fails at once with a clear message.
    """
    ROUTER_LOCK.touch(exist_ok=True)
    with ROUTER_LOCK.open("w") as lock:
        deadline = time.monotonic() + timeout * 4
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another router held {ROUTER_LOCK} too long") from None
                time.sleep(0.2)
        if port_in_use(ROUTER_PORT):
            raise RuntimeError(
                f"127.0.0.1:{ROUTER_PORT} is taken; KServe's router only listens on "
                f"{ROUTER_PORT}, so free it to run the router tests"
            )
        proc = Process(
            name="router",
            argv=[str(binary), "--graph-json", json.dumps(graph_spec)],
            log_path=log_dir / f"router-{time.monotonic_ns()}.log",
            # Headers the router forwards to every step (regexes over canonical names such as
            # "Traceparent"): the W3C trace context and the request id.
            env={"PROPAGATE_HEADERS": "(?i)^(traceparent|tracestate|x-request-id)$"},
        )
        proc.start()
        try:
            url = f"http://127.0.0.1:{ROUTER_PORT}"
            wait_until(
                lambda: httpx.get(f"{url}/readyz", timeout=2.0).status_code == 200,
                timeout,
                "the router to be ready",
                proc.died,
            )
            yield url
        finally:
            # SIGTERM makes the router sleep 30s (drain) before exiting: kill it outright.
            if proc.popen is not None and proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(timeout=10)


__all__ = ["CORPUS", "LABELS", "build_classifier", "build_models", "build_tokenizer"]


OWNER = Owner(name="demo", namespace="dataplane", uid="uid-1")


def rendered_graph(
    stage_urls: dict[str, dict[str, str]],
    weights: dict[str, int],
    graph: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The planner's InferenceGraph spec, with each stage step pointed at a local URL.

    ``stage_urls``: revision -> stage name -> URL of that revision's stage process.
    """
    specs = {
        revision: InferencePipelineSpec.model_validate(
            {
                "stages": [
                    {"name": name, "predictor": {"container": {"image": "local"}}} for name in urls
                ],
                **({"graph": graph} if graph else {}),
            }
        )
        for revision, urls in stage_urls.items()
    }
    revisions = list(weights)
    status: dict[str, Any] = {
        "stableRevision": revisions[0],
        "phase": "Healthy",
        "traffic": [{"revision": r, "weight": w} for r, w in weights.items()],
    }
    if len(revisions) > 1:
        status.update(canaryRevision=revisions[1], strategy="Canary", phase="Progressing")
    objects = plan(OWNER, specs, InferencePipelineStatus.model_validate(status))
    (graph_object,) = [o for o in objects if o["kind"] == "InferenceGraph"]
    spec: dict[str, Any] = graph_object["spec"]
    services = {
        naming.service_name(OWNER.name, stage, revision): url
        for revision, urls in stage_urls.items()
        for stage, url in urls.items()
    }
    for node in spec["nodes"].values():
        for step in node["steps"]:
            if "serviceName" in step:
                step["serviceUrl"] = services[step.pop("serviceName")]
    return spec
