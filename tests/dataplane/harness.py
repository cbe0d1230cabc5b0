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

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[2]
ROUTER_PORT = 8080  # fixed in KServe's router (constants.RouterPort); not configurable
ROUTER_LOCK = Path(tempfile.gettempdir()) / "inference-pipelines-router-8080.lock"
LABELS = ("negative", "neutral", "positive")

CORPUS = [
    "the service was great and the food was excellent",
    "terrible experience, the order arrived cold and late",
    "it was fine, nothing special about the place",
    "absolutely loved the new release of the model server",
    "the latency was awful and requests kept timing out",
    "an average day with average results",
    "fast responses and accurate predictions make users happy",
    "the pipeline failed again after the rollout",
    "canary traffic looks healthy and errors stay low",
    "I would not recommend this product to anyone",
    "batching improves throughput on the accelerator",
    "the tokenizer splits words into word pieces",
]


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


def build_tokenizer(directory: Path, corpus: Sequence[str] = CORPUS) -> None:
    """A WordPiece tokenizer trained on ``corpus``, saved as a BertTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(
        corpus, WordPieceTrainer(vocab_size=300, min_frequency=1, special_tokens=specials)
    )
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    fast.save_pretrained(str(directory))


def build_classifier(
    directory: Path,
    seed: int,
    tokenizer_dir: Path,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
) -> None:
    """A small seeded BertForSequenceClassification (3 labels) beside a copy of the tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden_size,
        initializer_range=0.2,
        max_position_embeddings=64,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # a decisive head, so that labels differ from text to text
        model.classifier.weight.mul_(40.0)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))


def build_models(root: Path, seeds: Sequence[int] = (1, 2)) -> list[Path]:
    """One shared tokenizer and one classifier directory per seed; returns the model dirs."""
    tok_dir = root / "tokenizer"
    build_tokenizer(tok_dir)
    dirs = []
    for seed in seeds:
        model_dir = root / f"classifier-seed{seed}"
        build_classifier(model_dir, seed, tok_dir)
        dirs.append(model_dir)
    return dirs


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
