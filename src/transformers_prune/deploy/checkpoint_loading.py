"""The model an export starts from: a checkpoint folder's model with the head to export, in eval mode, and its
tokenizer; refuses what would export something other than the trained model (freshly initialised weights, a head
guessed away)."""

from __future__ import annotations

import json
import os

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from ..folders import check_checkpoint_folder, load_checkpoint_tokenizer
from ..quiet import quiet_transformers
from ..registry import COMPRESSED_MODEL_TYPES, MODEL_TYPES


AUTO_CLASS_BY_SUFFIX = {
    "ForSequenceClassification": AutoModelForSequenceClassification,
    "ForQuestionAnswering": AutoModelForQuestionAnswering,
    "ForTokenClassification": AutoModelForTokenClassification,
}


# `--head` values: the head whose graph is exported.
HEADS = {
    "sequence-classification": AutoModelForSequenceClassification,
    "question-answering": AutoModelForQuestionAnswering,
    "token-classification": AutoModelForTokenClassification,
    "encoder": AutoModel,
}


ENCODER_TENSORS = ("bert.", "embeddings.", "encoder.", "pooler.")


def _head_tensors(path: str) -> list[str]:
    """Names of the tensors in `path`'s model.safetensors that belong to no encoder (a task head's)."""
    from safetensors import safe_open

    weights = os.path.join(path, "model.safetensors")
    if not os.path.isfile(weights):
        return []
    with safe_open(weights, "pt") as f:
        return sorted(name for name in f.keys() if not name.startswith(ENCODER_TENSORS))


def _auto_class(path: str, architecture: str, head: str | None):
    """The Auto class of `--head`, else of the config's architecture; refuses to guess when the config names none
    and the weights hold a head (exporting the bare encoder would drop it)."""
    if head is not None:
        return HEADS[head]
    if architecture:
        return next((auto for suffix, auto in AUTO_CLASS_BY_SUFFIX.items() if architecture.endswith(suffix)), AutoModel)
    head_tensors = _head_tensors(path)
    if head_tensors:
        raise ValueError(
            f"{path}'s config.json names no architecture but its weights hold a head ({', '.join(head_tensors[:3])}); "
            f"choose what to export with --head {{{','.join(HEADS)}}}"
        )
    return AutoModel


def load_for_export(path: str, head: str | None = None):
    """The checkpoint's model with `head` (default: its own, `config.architectures`; none: the bare encoder unless
    the weights hold a head), in eval mode, and its tokenizer. Raises FileNotFoundError for a folder without config.json, ValueError for a model type we do not
    export or weights the checkpoint lacks."""
    check_checkpoint_folder(path)
    with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
        model_type = json.load(f).get("model_type")
    supported = ("bert", *MODEL_TYPES, *COMPRESSED_MODEL_TYPES)
    if model_type not in supported:
        raise ValueError(f"{path}: model type {model_type!r} cannot be exported; supported: {', '.join(supported)}")
    config = AutoConfig.from_pretrained(path)
    architecture = (config.architectures or [""])[0]
    auto_class = _auto_class(path, architecture, head)
    with quiet_transformers():  # missing weights are refused below, in our words
        model, loading = auto_class.from_pretrained(path, config=config, output_loading_info=True)
    if loading["missing_keys"]:
        missing = sorted(loading["missing_keys"])
        raise ValueError(
            f"{path} lacks weights of its {type(model).__name__} ({', '.join(missing[:3])}...): the export would bake "
            "freshly initialised values into the graph"
        )
    return model.eval(), load_checkpoint_tokenizer(path)


__all__ = ["HEADS", "load_for_export"]
