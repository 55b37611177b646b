"""Two ways to run a stock `BertLayer`'s weights: on a packed batch, or on a padded batch with key weights.

Both reuse the layer's own submodules (`attention.self.query`, `attention.output`, `intermediate`, `output`),
so checkpoints keep BERT's names and every model type shares one implementation of the layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from transformers.models.bert.modeling_bert import BertLayer

from .token_engine import PackedBatch, packed_attention, packed_attention_with_received


def feed_forward(layer: BertLayer, context: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """The rest of the layer after attention: output projection + residual + LayerNorm, then the FFN."""
    attention_output = layer.attention.output(context, hidden)
    return layer.output(layer.intermediate(attention_output), attention_output)


def _packed_qkv(layer: BertLayer, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    self_attention = layer.attention.self
    head_shape = (hidden.shape[0], self_attention.num_attention_heads, self_attention.attention_head_size)
    return tuple(projection(hidden).view(head_shape) for projection in (self_attention.query, self_attention.key, self_attention.value))


def packed_layer_forward(layer: BertLayer, batch: PackedBatch, attention_backend: str) -> torch.Tensor:
    """One BERT layer on the live tokens of `batch`: `[N, H]` -> `[N, H]`. Only attention sees examples."""
    query, key, value = _packed_qkv(layer, batch.hidden)  # (N, nh, d)
    context = packed_attention(query, key, value, batch, layer.attention.self.scaling, attention_backend)
    return feed_forward(layer, context.flatten(1), batch.hidden)


def packed_attention_and_received(
    layer: BertLayer, batch: PackedBatch, attention_backend: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """A layer's attention context `[N, H]` and the attention each token receives `[N]` (summed over heads and
    live queries), for selectors that decide inside the layer, before its `feed_forward`."""
    query, key, value = _packed_qkv(layer, batch.hidden)
    context, received = packed_attention_with_received(
        query, key, value, batch, layer.attention.self.scaling, attention_backend
    )
    return context.flatten(1), received


def _weighted_softmax(scores: torch.Tensor, key_weights: torch.Tensor) -> torch.Tensor:
    """exp(s_k) w_k / sum_j exp(s_j) w_j over the last dimension, in fp32, cast back to `scores`' dtype.

    The scores are shifted by the largest score among keys of weight > 0, not among all keys: a weight-0 key
    scoring far above every kept one would otherwise drive every kept key's exp to 0 (a gap of ~87 in fp32; a
    softmax over all keys then weighted lost the layer's context that way). A weight-0 key's exp is capped where
    it would overflow: its probability is 0 either way; only its gradient with respect to its weight, which is
    astronomically large there, is capped with it. [CLS] is always kept, so the sum is positive.
    """
    dtype, weights, scores = scores.dtype, key_weights[:, None, None, :].float(), scores.float()
    kept_max = scores.masked_fill(weights == 0, torch.finfo(scores.dtype).min).amax(dim=-1, keepdim=True).detach()
    ceiling = math.log(torch.finfo(scores.dtype).max / scores.shape[-1])  # S capped terms still sum below the max
    weighted = (scores - kept_max).clamp_max(ceiling).exp() * weights
    return (weighted / weighted.sum(dim=-1, keepdim=True)).to(dtype)


def masked_layer_forward(
    layer: BertLayer,
    hidden: torch.Tensor,
    padding_mask: torch.Tensor,
    key_weights: torch.Tensor | None = None,
    attention: str = "eager",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One BERT layer on a padded batch, where tokens can be hidden from attention by soft or hard weights.

    Args:
        hidden: `[B, S, H]`.
        padding_mask: `[B, S]` bool, True on real tokens. Padding keys are removed before the softmax.
        key_weights: `[B, S]` weights in [0, 1] on keys (e.g. a straight-through skim mask), or None.
            Attention becomes exp(s_k) w_k / sum_j exp(s_j) w_j: a *masked softmax*, so kept keys' weights
            still sum to 1 and a gradient reaches w_k even where w_k = 0.
        attention: "eager" forms the probabilities explicitly; "sdpa" runs one SDPA call, for weights that are
            exactly 0 or 1 and need no gradient (the caller decides), and returns no probabilities.

    Returns:
        The layer output `[B, S, H]` and the attention probabilities `[B, nh, S, S]` before dropout (None for sdpa).
    """
    batch_size, seq_len, _ = hidden.shape
    self_attention = layer.attention.self
    head_shape = (batch_size, seq_len, self_attention.num_attention_heads, self_attention.attention_head_size)
    query, key, value = (
        projection(hidden).view(head_shape).transpose(1, 2)  # (B, nh, S, d)
        for projection in (self_attention.query, self_attention.key, self_attention.value)
    )
    dropout = self_attention.dropout.p if self_attention.training else 0.0
    if attention == "sdpa":
        keys = padding_mask if key_weights is None else padding_mask & (key_weights > 0)
        context = F.scaled_dot_product_attention(
            query, key, value, attn_mask=keys[:, None, None, :], dropout_p=dropout, scale=self_attention.scaling
        )
        return feed_forward(layer, context.transpose(1, 2).reshape(batch_size, seq_len, -1), hidden), None
    scores = torch.matmul(query, key.transpose(-1, -2)) * self_attention.scaling  # (B, nh, S, S)
    scores = scores.masked_fill(~padding_mask[:, None, None, :], torch.finfo(scores.dtype).min)
    probs = scores.softmax(dim=-1) if key_weights is None else _weighted_softmax(scores, key_weights)
    dropped = F.dropout(probs, p=dropout, training=self_attention.training)
    context = torch.matmul(dropped, value).transpose(1, 2).reshape(batch_size, seq_len, -1)
    return feed_forward(layer, context, hidden), probs


__all__ = ["feed_forward", "masked_layer_forward", "packed_attention_and_received", "packed_layer_forward"]
