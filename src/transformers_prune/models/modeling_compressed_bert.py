"""`compressed-bert`: BERT with weight matrices compressed offline (Banaei et al., 2023, and its baselines).

The model is HF's BERT with some modules swapped for their compressed form, as recorded in
`config.compressed_modules`: a linear layer or the word embeddings stored as two low-rank factors (SVD,
Fisher-weighted SVD), or a linear layer with a fixed pruning mask. `transformers-prune compress` writes such
checkpoints; `from_pretrained` rebuilds the same modules from the config and never re-runs compression.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.bert.modeling_bert import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

from .checkpoint_files import HubCheckpointMixin
from .configuration_compressed_bert import CompressedBertConfig


class LowRankLinear(nn.Module):
    """W ~ A B as two linears: `down` (B: rank x in, no bias) then `up` (A: out x rank, with W's bias)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(hidden))


class LowRankEmbedding(nn.Module):
    """Embedding table E ~ A B: per-token codes A (`codes`, vocab x rank) decoded by B (`up`, rank -> hidden)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, rank: int, padding_idx: int | None = None):
        super().__init__()
        self.codes = nn.Embedding(num_embeddings, rank, padding_idx=padding_idx)
        self.up = nn.Linear(rank, embedding_dim, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.up(self.codes(input_ids))


class PrunedLinear(nn.Linear):
    """A linear whose pruned weights stay zero: the kept positions are a bool `mask` buffer saved with the weights."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("mask", torch.ones(out_features, in_features, dtype=torch.bool))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.linear(hidden, self.weight * self.mask, self.bias)


class PrunedEmbedding(nn.Embedding):
    """An embedding table whose pruned entries stay zero, kept positions in a bool `mask` buffer."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None):
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx)
        self.register_buffer("mask", torch.ones(num_embeddings, embedding_dim, dtype=torch.bool))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(input_ids, self.weight * self.mask, self.padding_idx)


def compressed_module(original: nn.Module, spec: dict) -> nn.Module:
    """The compressed replacement of `original` described by `spec` (see `CompressedBertConfig`), uninitialised."""
    if isinstance(original, nn.Embedding):
        if spec["kind"] == "low_rank":
            return LowRankEmbedding(original.num_embeddings, original.embedding_dim, spec["rank"], original.padding_idx)
        return PrunedEmbedding(original.num_embeddings, original.embedding_dim, original.padding_idx)
    if isinstance(original, nn.Linear):
        bias = original.bias is not None
        if spec["kind"] == "low_rank":
            return LowRankLinear(original.in_features, original.out_features, spec["rank"], bias)
        return PrunedLinear(original.in_features, original.out_features, bias)
    raise ValueError(f"cannot compress a {type(original).__name__} as {spec['kind']!r}")


def swap_compressed_modules(bert: BertModel, config: CompressedBertConfig) -> None:
    for path, spec in (config.compressed_modules or {}).items():
        parent_path, _, name = path.rpartition(".")
        parent = bert.get_submodule(parent_path)
        setattr(parent, name, compressed_module(getattr(parent, name), spec))


class CompressedBertModel(HubCheckpointMixin, BertModel):
    config_class = CompressedBertConfig

    def __init__(self, config: CompressedBertConfig, add_pooling_layer: bool = True):
        super().__init__(config, add_pooling_layer=add_pooling_layer)
        swap_compressed_modules(self, config)


class CompressedBertForSequenceClassification(HubCheckpointMixin, BertForSequenceClassification):
    config_class = CompressedBertConfig

    def __init__(self, config: CompressedBertConfig):
        super().__init__(config)
        swap_compressed_modules(self.bert, config)


class CompressedBertForQuestionAnswering(HubCheckpointMixin, BertForQuestionAnswering):
    config_class = CompressedBertConfig

    def __init__(self, config: CompressedBertConfig):
        super().__init__(config)
        swap_compressed_modules(self.bert, config)


class CompressedBertForTokenClassification(HubCheckpointMixin, BertForTokenClassification):
    config_class = CompressedBertConfig

    def __init__(self, config: CompressedBertConfig):
        super().__init__(config)
        swap_compressed_modules(self.bert, config)


__all__ = [
    "CompressedBertForQuestionAnswering",
    "CompressedBertForSequenceClassification",
    "CompressedBertForTokenClassification",
    "CompressedBertModel",
    "LowRankEmbedding",
    "LowRankLinear",
    "PrunedEmbedding",
    "PrunedLinear",
]
