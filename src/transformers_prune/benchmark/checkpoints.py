"""The checkpoints a benchmark compares: checked against the task up front, then loaded as every variant.

One checkpoint's weights run as (each a row of the report):

- `hf_padded`, `hf_dynamic`: HF `BertForSequenceClassification` / `BertForQuestionAnswering` (sdpa), one model fed
  batches padded to `max_length` or to their longest input. Our models keep BERT's parameter names, so a
  token-pruning checkpoint loads into the BERT class; its extra tensors (e.g. skim predictors) are ignored.
- `dense_packed`: the method-free packed engine (`PackedBert*`, nothing dropped) with the checkpoint's BERT weights.
- the checkpoint itself on our engine, for a token-pruning checkpoint (row named by its `model_type`).

A `compressed-bert` checkpoint has no uncompressed weights to build baselines from: it runs as saved (its config's
`inference_engine`, by default the packed engine, so it compares like for like with `dense_packed`; row
`compressed-bert`) and is compared against the baselines of an uncompressed checkpoint of the same shape listed
before it.

A checkpoint without the task's head (e.g. a bare `BertModel` such as MiniLM) gets one fresh head, seeded and
copied into every variant, so the variants still compute the same function; its quality figures mean nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field, fields

import torch
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ..folders import check_checkpoint_folder, check_max_length, load_checkpoint_tokenizer
from ..models.modeling_packed_bert import PackedBertForQuestionAnswering, PackedBertForSequenceClassification
from ..quiet import quiet_transformers
from ..registry import COMPRESSED_MODEL_TYPES, MODEL_TYPES
from .data import CLASSIFICATION, QUESTION_ANSWERING, TaskSpec

logger = logging.getLogger(__name__)

HF_DYNAMIC, HF_PADDED, HF_SORTED, DENSE_PACKED = "hf_dynamic", "hf_padded", "hf_sorted", "dense_packed"
SUPPORTED_MODEL_TYPES = ("bert", *MODEL_TYPES, *COMPRESSED_MODEL_TYPES)
HF_CLASSES = {CLASSIFICATION: BertForSequenceClassification, QUESTION_ANSWERING: BertForQuestionAnswering}
PACKED_CLASSES = {CLASSIFICATION: PackedBertForSequenceClassification, QUESTION_ANSWERING: PackedBertForQuestionAnswering}
AUTO_CLASSES = {CLASSIFICATION: AutoModelForSequenceClassification, QUESTION_ANSWERING: AutoModelForQuestionAnswering}
# Architecture-name suffix -> the task kind of its head; other architectures (BertModel, BertForMaskedLM, ...)
# carry no task head.
HEAD_SUFFIXES = {
    "ForSequenceClassification": CLASSIFICATION,
    "ForQuestionAnswering": QUESTION_ANSWERING,
    "ForTokenClassification": "token-classification",
}
BERT_CONFIG_FIELDS = frozenset(f.name for f in fields(BertConfig))


@dataclass
class Checkpoint:
    """A checkpoint folder that passed the checks: its config (our config class for our types) and tokenizer."""

    path: str
    label: str
    config: PreTrainedConfig
    tokenizer: PreTrainedTokenizerBase

    @property
    def model_type(self) -> str:
        return self.config.model_type

    @property
    def is_token_pruning(self) -> bool:
        return self.model_type in MODEL_TYPES

    @property
    def is_compressed(self) -> bool:
        return self.model_type in COMPRESSED_MODEL_TYPES


@dataclass
class LoadedCheckpoint:
    """The models of one checkpoint, on the benchmark device, in eval mode.

    Attributes:
        hf: the HF BERT model behind both `hf_padded` and `hf_dynamic` (None for a compressed checkpoint).
        dense_packed: our engine, nothing dropped (None for a compressed checkpoint).
        method_model: the checkpoint as saved: token pruning on our engine, or compressed weights in HF's
            forward; None for a plain BERT checkpoint.
        new_head_keys: parameters the checkpoint lacked (a fresh task head), shared by every variant.
        ignored_by_hf: patterns of checkpoint tensors HF BERT has no place for.
    """

    hf: PreTrainedModel | None
    dense_packed: PreTrainedModel | None
    method_model: PreTrainedModel | None
    new_head_keys: list[str] = field(default_factory=list)
    ignored_by_hf: list[str] = field(default_factory=list)


def checkpoint_labels(paths: list[str]) -> list[str]:
    """Short row names: each folder's name, or its whole path where two folders share a name."""
    names = [os.path.basename(os.path.normpath(path)) for path in paths]
    return [name if names.count(name) == 1 else os.path.normpath(path) for name, path in zip(names, paths)]


def task_head(config: PreTrainedConfig) -> str | None:
    """The task kind of the checkpoint's head (from `config.architectures`), or None for a bare encoder."""
    for architecture in config.architectures or ():
        for suffix, kind in HEAD_SUFFIXES.items():
            if architecture.endswith(suffix):
                return kind
    return None


def inspect_checkpoint(path: str, task: TaskSpec, max_length: int, label: str | None = None) -> Checkpoint:
    """Read a checkpoint's config and tokenizer and check it can run `task`; loads no weights.

    Raises FileNotFoundError for a missing folder, weights or tokenizer, ValueError for a model type or head that does not
    fit the task, or a `max_length` beyond the model's position embeddings.
    """
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"checkpoint {path} does not exist or is not a checkpoint folder (no config.json)")
    check_checkpoint_folder(path, need_weights=True)
    with open(config_file, encoding="utf-8") as f:
        model_type = json.load(f).get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(f"{path}: model type {model_type!r} cannot be benchmarked; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
    config = AutoConfig.from_pretrained(path)
    _check_head(path, config, task)
    check_max_length(path, max_length)
    return Checkpoint(path, label or os.path.basename(os.path.normpath(path)), config, _load_tokenizer(path, task))


def _check_head(path: str, config: PreTrainedConfig, task: TaskSpec) -> None:
    head = task_head(config)
    if head is not None and head != task.kind:
        raise ValueError(f"{path} is a {head} checkpoint ({config.architectures[0]}); task {task.name} needs {task.kind}")
    if head == CLASSIFICATION and config.num_labels != task.num_labels:
        raise ValueError(f"{path} classifies into {config.num_labels} labels; task {task.name} has {task.num_labels}")
    if head == QUESTION_ANSWERING and config.num_labels != 2:
        raise ValueError(f"{path} has num_labels={config.num_labels}; a question-answering head has 2 (start, end)")


def _load_tokenizer(path: str, task: TaskSpec) -> PreTrainedTokenizerBase:
    try:
        tokenizer = load_checkpoint_tokenizer(path)
    except OSError as error:
        raise FileNotFoundError(f"{path} has no usable tokenizer files: {error}") from error
    if tokenizer.padding_side != "right":
        raise ValueError(f"{path}'s tokenizer pads on the {tokenizer.padding_side}; BERT inputs are right-padded")
    if task.kind == QUESTION_ANSWERING and not tokenizer.is_fast:
        raise ValueError(f"{path}'s tokenizer is not a fast tokenizer; SQuAD features need its offset_mapping")
    return tokenizer


def bert_config(config: PreTrainedConfig) -> BertConfig:
    """A plain `BertConfig` with the checkpoint's BERT fields (architecture and labels), nothing of the method."""
    return BertConfig(**{key: value for key, value in config.to_dict().items() if key in BERT_CONFIG_FIELDS})


def _module_patterns(keys: list[str]) -> list[str]:
    """`bert.encoder.skim_predictors.0.dense.weight, ...` -> `["bert.encoder.skim_predictors.*"]`."""
    return sorted({re.sub(r"\.\d+\..*", ".*", key) for key in keys})


def _is_head_key(key: str) -> bool:
    return not key.startswith("bert.") or key.startswith("bert.pooler.")


def _load_hf(checkpoint: Checkpoint, task: TaskSpec) -> tuple[PreTrainedModel, list[str], list[str]]:
    """HF BERT with the checkpoint's weights; also its fresh head keys and the ignored tensors' patterns."""
    with quiet_transformers():
        model, loading = HF_CLASSES[task.kind].from_pretrained(
            checkpoint.path, config=bert_config(checkpoint.config), attn_implementation="sdpa", output_loading_info=True
        )
    missing = sorted(loading["missing_keys"])
    not_head = [key for key in missing if not _is_head_key(key)]
    if not_head:
        raise ValueError(f"{checkpoint.path} lacks BERT weights {not_head[:3]}...; its parameters do not keep BERT's names")
    ignored = _module_patterns(sorted(loading["unexpected_keys"]))
    if ignored:
        logger.warning(
            "%s: the HF baselines (%s) ignore %d checkpoint tensors they have no place for: %s",
            checkpoint.label, type(model).__name__, len(loading["unexpected_keys"]), ", ".join(ignored),
        )
    if missing:
        logger.warning(
            "%s has no trained %s head: %s initialised fresh (seeded) and shared by every variant; "
            "its quality figures are those of an untrained head",
            checkpoint.label, task.kind, ", ".join(missing),
        )
    return model, missing, ignored


def _load_dense_packed(checkpoint: Checkpoint, task: TaskSpec) -> PreTrainedModel:
    """The checkpoint's BERT weights on the method-free packed engine (a method's own tensors are left out)."""
    with quiet_transformers():
        return PACKED_CLASSES[task.kind].from_pretrained(checkpoint.path, config=bert_config(checkpoint.config))


def _load_token_pruning(checkpoint: Checkpoint, task: TaskSpec) -> PreTrainedModel:
    """The token-pruning checkpoint as saved, on our engine."""
    with quiet_transformers():
        return AUTO_CLASSES[task.kind].from_pretrained(checkpoint.path)


def _copy_parameters(source: PreTrainedModel, target: PreTrainedModel, keys: list[str]) -> None:
    state = source.state_dict()
    result = target.load_state_dict({key: state[key] for key in keys}, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"{type(target).__name__} has no parameters {result.unexpected_keys}")


def load_checkpoint(
    checkpoint: Checkpoint, task: TaskSpec, device: torch.device, seed: int, dtype: torch.dtype = torch.float32
) -> LoadedCheckpoint:
    """Every variant of `checkpoint` (see the module docstring), same weights, on `device` in `dtype`, in eval mode."""
    torch.manual_seed(seed)
    if checkpoint.is_compressed:
        compressed, new_head_keys = _load_compressed(checkpoint, task)
        return LoadedCheckpoint(None, None, compressed.to(device=device, dtype=dtype).eval(), new_head_keys)
    hf, new_head_keys, ignored = _load_hf(checkpoint, task)
    dense_packed = _load_dense_packed(checkpoint, task)
    pruned = _load_token_pruning(checkpoint, task) if checkpoint.is_token_pruning else None
    for model in (dense_packed, pruned):
        if model is not None:
            _copy_parameters(hf, model, new_head_keys)
            model.to(device=device, dtype=dtype).eval()
    hf.to(device=device, dtype=dtype).eval()
    return LoadedCheckpoint(hf, dense_packed, pruned, new_head_keys, ignored)


def _load_compressed(checkpoint: Checkpoint, task: TaskSpec) -> tuple[PreTrainedModel, list[str]]:
    with quiet_transformers():
        model, loading = AUTO_CLASSES[task.kind].from_pretrained(
            checkpoint.path, attn_implementation="sdpa", output_loading_info=True
        )
    missing = sorted(loading["missing_keys"])
    if missing:
        logger.warning(
            "%s has no trained %s head: %s initialised fresh (seeded); its quality figures are those of an untrained head",
            checkpoint.label, task.kind, ", ".join(missing),
        )
    return model, missing


__all__ = [
    "DENSE_PACKED",
    "HF_DYNAMIC",
    "HF_SORTED",
    "HF_PADDED",
    "SUPPORTED_MODEL_TYPES",
    "Checkpoint",
    "LoadedCheckpoint",
    "bert_config",
    "checkpoint_labels",
    "inspect_checkpoint",
    "load_checkpoint",
    "task_head",
]
