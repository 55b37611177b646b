"""Forwards that `torch.export` can trace, as functions of the three BERT input arrays, returning a tuple.

- `PaddedGraph`: a dense model (plain BERT, compressed-bert) through HF's BERT forward on the padded batch, at
  any batch size; what ONNX Runtime users export today, and the benchmark's ORT peer rows.
- `SingleExampleGraph`: a token-pruning model on one example (`[1, S]`, padding allowed) that really drops
  tokens: the engine's own packed loop (`run_packed_layers`) with the method's own selector, on a packed batch
  of one example whose sizes are data-dependent (the kept count after each decision). Each layer gathers the
  kept rows (`nonzero` + index) and runs attention and FFN on them only; heads that need every position get the
  dropped tokens' last states back from the restore buffer, as on the engine.

Why one example: the engine reads each compaction's offsets to the host (`drop_tokens`) and loops over the
examples in Python, which an exported graph cannot do for a batch whose split is data. With one example the
offsets are `(0, n)`, `n` a symbolic size, and nothing needs the host; the runner feeds a batch one example at a
time (`runner.py`).

`dense_inference_copy` prepares a dense model for tracing: HF's forward instead of the packed engine (packed BERT,
compressed-bert), whose per-example loop is Python control flow on data, and compressed-bert's weights rebuilt
once from their stored factors into plain `nn.Linear` / `nn.Embedding` (low-rank factors stay two matmuls, which
is where their saving is).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..models.modeling_compressed_bert import FactoredEmbedding, FactoredLinear
from ..models.modeling_token_pruning import packed_result
from ..models.token_engine import PackedBatch
from ..models.token_selection import SelectionTrace, run_packed_layers

# Attention of one example's kept tokens: one SDPA call on `[1, nh, n, d]` (the CPU engine's kernel).
SINGLE_EXAMPLE_ATTENTION = "sdpa_per_example"

# Head -> the model outputs its graph returns, in order.
HEAD_OUTPUTS = {
    "sequence-classification": ("logits",),
    "question-answering": ("start_logits", "end_logits"),
    "token-classification": ("logits",),
    "encoder": ("last_hidden_state",),
}
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def head_of(model: nn.Module) -> str:
    """The head kind of a model of ours or of HF BERT, from its class name (`...ForQuestionAnswering`, ...)."""
    name = type(model).__name__
    for suffix, head in (
        ("ForSequenceClassification", "sequence-classification"),
        ("ForQuestionAnswering", "question-answering"),
        ("ForTokenClassification", "token-classification"),
    ):
        if name.endswith(suffix):
            return head
    if name.endswith("Model"):
        return "encoder"
    raise ValueError(f"cannot export a {name}: supported heads are sequence classification, question answering, token classification and the bare encoder")


def _dense_twin(module: nn.Module) -> nn.Module:
    """`nn.Linear` / `nn.Embedding` holding a factored module's rebuilt dense weight."""
    weight = module.factors().detach()
    if isinstance(module, FactoredLinear):
        twin = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
        if module.bias is not None:
            twin.bias = nn.Parameter(module.bias.detach().clone())
    else:
        twin = nn.Embedding(module.num_embeddings, module.embedding_dim, padding_idx=module.padding_idx)
    twin.weight = nn.Parameter(weight.clone())
    return twin


@torch.no_grad()
def dense_inference_copy(model: nn.Module) -> nn.Module:
    """An eval-mode fp32 CPU copy of `model` that HF's forward runs and `torch.export` traces (see module docstring);
    other models are copied unchanged."""
    model = copy.deepcopy(model).float().cpu().eval()
    if hasattr(model.base_model, "runs_packed"):  # PackedBertModel and compressed-bert: HF's own forward
        model.config.inference_engine = "hf"
        factored = [(name, module) for name, module in model.named_modules() if isinstance(module, (FactoredLinear, FactoredEmbedding))]
        for name, module in factored:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, _dense_twin(module))
    return model


class PaddedGraph(nn.Module):
    """HF's forward of a dense model on a padded `[B, S]` batch; returns the head's outputs (`HEAD_OUTPUTS`)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.output_names = HEAD_OUTPUTS[head_of(model)]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=True)
        return tuple(outputs[name] for name in self.output_names)


def _one_example(hidden: torch.Tensor, indices: torch.Tensor, seq_len: int, restore: torch.Tensor | None) -> PackedBatch:
    """A packed batch of one example: `hidden` `[n, H]` its live tokens, `indices` `[n]` their positions."""
    count = indices.shape[0]
    torch._check(count > 0)  # [CLS] is always kept, so no compaction empties the example
    cu_seqlens = F.pad(torch.ones_like(indices).sum(0, keepdim=True).cumsum(0, dtype=torch.int32), (1, 0))  # [0, n]
    return PackedBatch(hidden, indices, cu_seqlens, (0, count), count, 1, seq_len, restore)


def pack_one_example(hidden: torch.Tensor, attention_mask: torch.Tensor, keep_restore_buffer: bool) -> PackedBatch:
    """`token_engine.pack` for `[1, S, H]` states without a host sync: the live rows by `nonzero`."""
    seq_len = hidden.shape[1]
    live = attention_mask[0].nonzero().flatten()
    restore = torch.zeros_like(hidden[0]) if keep_restore_buffer else None
    return _one_example(hidden[0][live], live, seq_len, restore)


def drop_in_graph(batch: PackedBatch, keep: torch.Tensor) -> PackedBatch:
    """`token_engine.drop_tokens` for a batch of one example, without a host sync: the kept rows by `nonzero`. The
    restore buffer takes every token's current state (the kept ones are overwritten by `unpack`)."""
    kept = keep.nonzero().flatten()
    restore = batch.restore.index_copy(0, batch.indices, batch.hidden) if batch.restore is not None else None
    return _one_example(batch.hidden[kept], batch.indices[kept], batch.seq_len, restore)


class SingleExampleGraph(nn.Module):
    """A token-pruning model on one `[1, S]` example, dropping tokens as its packed engine does (module docstring).

    Returns the head's outputs (`HEAD_OUTPUTS`) and `tokens_per_layer` `[1, L]`, the tokens entering each layer.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.head = head_of(model)
        self.output_names = (*HEAD_OUTPUTS[self.head], "tokens_per_layer")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        base, config = self.model.base_model, self.model.config
        every_position = base.every_position  # what the head reads: every position, or the pooled [CLS] row only
        hidden = base.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)  # [1, S, H]
        batch = pack_one_example(hidden, attention_mask, keep_restore_buffer=every_position)
        selector = base.encoder if config.prune_at_inference else None
        trace = SelectionTrace({}, torch.ones_like(batch.indices).sum())
        batch, counts, _ = run_packed_layers(
            base.encoder.layer, batch, SINGLE_EXAMPLE_ATTENTION, selector, trace, drop=drop_in_graph
        )
        result = packed_result(batch, counts, None, full_length=every_position)
        return (*self._head_outputs(base, result), result.tokens_per_layer)

    def _head_outputs(self, base: nn.Module, result) -> tuple[torch.Tensor, ...]:
        """The head's own `head_logits` (eval mode: dropout is the identity) on the encoder's result."""
        if self.head == "encoder":
            return (result.last_hidden_state,)
        return self.model.head_logits(base.model_output(result))


__all__ = [
    "HEAD_OUTPUTS",
    "INPUT_NAMES",
    "PaddedGraph",
    "SingleExampleGraph",
    "dense_inference_copy",
    "drop_in_graph",
    "head_of",
    "pack_one_example",
]
