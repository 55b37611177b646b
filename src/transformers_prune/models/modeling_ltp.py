"""`ltp`: Learned Token Pruning (Kim et al., "Learned Token Pruning for Transformers", KDD 2022) on BERT.

No predictor: inside each layer, right after the attention softmax, a token's score is the attention it
receives. A token scoring below its layer's threshold (`prune_mode="absolute_threshold"`), or outside its
input's scheduled top-k (`prune_mode="topk"`, the SpAtten-style baseline), skips that layer's FFN and every
later layer; its last state is forwarded to the output. The recipe has two training stages: "soft" learns the
thresholds through a sigmoid mask and a regulariser, "hard" fine-tunes the weights with the thresholds fixed.
Evaluation is always hard, and on the packed engine it removes the pruned tokens for real, at any batch size.

Differences from the official code (kssteven418/LTP), each listed in our research notes:

- [CLS] is never pruned. The original does not protect it, which only works because it never removes
  anything: a pruned [CLS] is still computed as a query and read by the classifier. Removing tokens for real
  needs it kept (it is what the pooler reads, and every input needs one live token).
- Scores are averaged over the live queries of the token's own example (`scoring_mode="mean_norm"`) or over
  a fixed length (`"mean"`), never over the batch's padded length, so they do not change with batch padding.
- Scores come from the attention probabilities before dropout, so training scores match evaluation's.
- Padding counts neither in the regulariser nor in kept fractions (the original's mean includes pad positions).
- Thresholds live in the checkpoint as `encoder.threshold_offsets`, scaled by `threshold_lr_scale` so one
  optimizer trains them at their own speed (the original used a second optimizer and a patched Trainer),
  and on whatever device the model is on (the original hard-coded CUDA tensors).
- A token is pruned when its score is below the threshold; the original's extra floor of 1e-5 is dropped.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import initialization as init
from transformers.models.bert.modeling_bert import BertLayer

from .bert_layer_forward import feed_forward, masked_layer_forward, packed_attention_and_received, packed_layer_forward
from .configuration_ltp import LTPConfig
from .modeling_token_pruning import (
    EncoderResult,
    TokenPruningForQuestionAnswering,
    TokenPruningForSequenceClassification,
    TokenPruningForTokenClassification,
    TokenPruningModel,
    TokenPruningPreTrainedModel,
    run_packed_layers,
)
from .token_engine import PackedBatch, drop_tokens


def topk_schedule(num_layers: int, token_keep_rate: float) -> list[float]:
    """Keep rate of each layer under top-k: 1 for the first max(3, ceil(0.15 L)) layers, then falling linearly
    to `token_keep_rate` at the last layer (the original's `CascadeTokenPruner`, floor 0.01 included)."""
    first_pruning = max(3, math.ceil(0.15 * num_layers))
    return [
        1.0 if layer < first_pruning
        else max(0.01, 1 + (token_keep_rate - 1) * (layer - first_pruning + 1) / (num_layers - first_pruning))
        for layer in range(num_layers)
    ]


def keep_top_scores(scores: torch.Tensor, live: torch.Tensor, keep_counts: torch.Tensor) -> torch.Tensor:
    """`[B, S]` bool: each example's `keep_counts` highest-scoring live tokens, position 0 ([CLS]) always among them."""
    ranked = scores.masked_fill(~live, -math.inf)
    ranked[:, 0] = math.inf
    rank = ranked.argsort(dim=1, descending=True, stable=True).argsort(dim=1)
    return (rank < keep_counts[:, None]) & live


class LTPEncoder(nn.Module):
    """`layer.N` are BERT's layers (checkpoint names unchanged); `threshold_offsets[N]` is layer N's learned offset."""

    def __init__(self, config: LTPConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList(BertLayer(config, layer_idx=i) for i in range(config.num_hidden_layers))
        self.threshold_offsets = nn.Parameter(torch.zeros(config.num_hidden_layers))

    def thresholds(self) -> torch.Tensor:
        """`[L]` threshold of each layer: `final_token_threshold * l / L` plus the learned offset."""
        num_layers = self.config.num_hidden_layers
        base = torch.arange(num_layers, device=self.threshold_offsets.device) * (self.config.final_token_threshold / num_layers)
        return base.to(self.threshold_offsets.dtype) + self.config.threshold_lr_scale * self.threshold_offsets

    def pruning_layers(self) -> list[bool]:
        """Which layers decide: those with a positive base threshold (never layer 0), or top-k rate below 1."""
        num_layers = self.config.num_hidden_layers
        if self.config.prune_mode == "topk":
            return [rate < 1 for rate in topk_schedule(num_layers, self.config.token_keep_rate)]
        return [self.config.final_token_threshold * layer / num_layers > 0 for layer in range(num_layers)]

    def _normalise(self, received: torch.Tensor, live_queries: torch.Tensor) -> torch.Tensor:
        """Summed attention received -> the mean over heads and queries that thresholds compare against."""
        length = live_queries if self.config.scoring_mode == "mean_norm" else self.config.score_normalization_length
        return received / (self.config.num_attention_heads * length)

    def _keep(
        self, scores: torch.Tensor, live: torch.Tensor, layer: int, lengths: torch.Tensor, thresholds: torch.Tensor
    ) -> torch.Tensor:
        """`[B, S]` bool: the live tokens layer `layer` keeps, [CLS] included (`thresholds`: `[L]`, detached)."""
        if self.config.prune_mode == "topk":
            rate = topk_schedule(self.config.num_hidden_layers, self.config.token_keep_rate)[layer]
            return keep_top_scores(scores, live, (lengths * rate).round().clamp_min(1))
        keep = scores >= thresholds[layer]
        keep[:, 0] = True
        return keep & live

    def forward_masked(
        self, hidden: torch.Tensor, padding_mask: torch.Tensor, prune: bool, output_hidden_states: bool, output_attentions: bool
    ) -> EncoderResult:
        """Padded form. Hard: pruned tokens are hidden from later attention and keep the state they entered the
        pruning layer with. Soft (training in masking_mode="soft"): nothing is hidden; each pruning layer's
        output is scaled by the token's sigmoid mask."""
        soft = prune and self.training and self.config.masking_mode == "soft"
        hard = prune and not soft
        lengths = padding_mask.sum(dim=1)
        thresholds = self.thresholds()  # differentiable: the soft mask trains the offsets
        live = padding_mask  # [B, S] tokens still in the encoder (hard form)
        entering = lengths.to(hidden.dtype)  # tokens entering the next layer; soft: the expected count
        soft_mask_means, kept_counts, all_hidden, all_attentions = [], [], [hidden], []
        for index, (layer, decides) in enumerate(zip(self.layer, self.pruning_layers())):
            kept_counts.append(live.sum(dim=1).to(hidden.dtype) if hard else entering)
            output, probs = masked_layer_forward(layer, hidden, padding_mask, key_weights=live.to(hidden.dtype) if hard else None)
            if prune and decides:
                received = (probs * live[:, None, :, None]).sum(dim=(1, 2))  # rows of pruned queries zeroed
                scores = self._normalise(received, live.sum(dim=1, keepdim=True))
                if soft:
                    mask = torch.sigmoid((scores - thresholds[index]) / self.config.temperature)
                    mask = torch.cat([torch.ones_like(mask[:, :1]), mask[:, 1:]], dim=1) * padding_mask
                    output = output * mask[..., None]
                    entering = mask.sum(dim=1)
                    soft_mask_means.append(mask.sum() / lengths.sum())
                else:
                    live = self._keep(scores, live, index, lengths, thresholds.detach())
                    output = torch.where(live[..., None], output, hidden)  # pruned tokens keep their entering state
            hidden = output
            all_hidden.append(hidden)
            all_attentions.append(probs)
        pruning_loss = self.config.lambda_threshold * torch.stack(soft_mask_means).sum() if soft_mask_means else None
        return EncoderResult(
            last_hidden_state=hidden,
            tokens_per_layer=torch.stack(kept_counts, dim=1).detach().round().long(),
            pruning_loss=pruning_loss,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )

    def forward_packed(
        self, batch: PackedBatch, attention_backend: str, prune: bool, output_hidden_states: bool
    ) -> tuple[PackedBatch, EncoderResult]:
        """Packed form, always hard: a pruning layer scores its live tokens after attention and runs its FFN on
        the kept ones only; the engine's restore buffer forwards the pruned ones to the output."""
        lengths, thresholds, decides = batch.seqlens(), self.thresholds().detach(), self.pruning_layers()

        def layer_step(index: int, batch: PackedBatch) -> tuple[torch.Tensor, PackedBatch]:
            layer, entering = self.layer[index], batch.seqlens()
            if not (prune and decides[index]):
                return entering, batch.with_hidden(packed_layer_forward(layer, batch, attention_backend))
            context, received = packed_attention_and_received(layer, batch, attention_backend)
            scores = self._normalise(received, entering[batch.example_ids()])
            keep = self._keep(*self._to_grid(batch, scores), index, lengths, thresholds).flatten()[batch.indices]
            kept = drop_tokens(batch, keep)
            if kept is not batch:
                context = context[keep]
            return entering, kept.with_hidden(feed_forward(layer, context, kept.hidden))

        return run_packed_layers(batch, len(self.layer), layer_step, output_hidden_states)

    @staticmethod
    def _to_grid(batch: PackedBatch, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Packed `[N]` scores -> `[B, S]` scores and live mask, the layout `_keep` works in."""
        grid_size = batch.batch_size * batch.seq_len
        grid = scores.new_zeros(grid_size).index_copy(0, batch.indices, scores)
        live = torch.zeros(grid_size, dtype=torch.bool, device=scores.device).index_fill(0, batch.indices, True)
        return grid.view(batch.batch_size, batch.seq_len), live.view(batch.batch_size, batch.seq_len)


class LTPPreTrainedModel(TokenPruningPreTrainedModel):
    config_class = LTPConfig
    config: LTPConfig

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, LTPEncoder):
            # Offsets start at 0: thresholds are the linear base schedule. A loaded checkpoint's are kept.
            init.zeros_(module.threshold_offsets)


class LTPModel(LTPPreTrainedModel, TokenPruningModel):
    encoder_class = LTPEncoder


class LTPForSequenceClassification(LTPPreTrainedModel, TokenPruningForSequenceClassification):
    model_class = LTPModel


class LTPForQuestionAnswering(LTPPreTrainedModel, TokenPruningForQuestionAnswering):
    model_class = LTPModel


class LTPForTokenClassification(LTPPreTrainedModel, TokenPruningForTokenClassification):
    model_class = LTPModel


__all__ = [
    "LTPEncoder",
    "LTPForQuestionAnswering",
    "LTPForSequenceClassification",
    "LTPForTokenClassification",
    "LTPModel",
    "LTPPreTrainedModel",
    "topk_schedule",
]
