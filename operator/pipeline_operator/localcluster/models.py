"""Models for the local data plane, built on the spot: nothing is downloaded from a hub.

The tokenizer is trained on a small corpus; classifiers are small BERTs built from a config
with a fixed seed (a decisive head, so that labels differ from text to text), saved with a
copy of the tokenizer as a Hugging Face model directory that the kit's servers load.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
