"""Forwards that `torch.export` can trace, as functions of the three BERT input arrays, returning a tuple.

- `PaddedGraph`: a dense model (plain BERT, compressed-bert) through HF's BERT forward on the padded batch, at
  any batch size; what ONNX Runtime users export today, and the benchmark's ORT peer rows.

`dense_inference_copy` prepares a dense model for tracing: HF's forward instead of the packed engine (packed BERT,
compressed-bert), whose per-example loop is Python control flow on data, and compressed-bert's weights rebuilt
once from their stored factors into plain `nn.Linear` / `nn.Embedding` (low-rank factors stay two matmuls, which
is where their saving is).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..models.modeling_compressed_bert import FactoredEmbedding, FactoredLinear

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


__all__ = ["HEAD_OUTPUTS", "INPUT_NAMES", "PaddedGraph", "dense_inference_copy", "head_of"]
