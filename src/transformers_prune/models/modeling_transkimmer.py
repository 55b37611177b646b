"""`transkimmer-bert`: Transkimmer (Guan et al., "Transkimmer: Transformer Learns to Layer-wise Skim", ACL 2022).

A small predictor before every layer decides, per token, keep or skim. A skimmed token leaves the encoder:
its state from the last layer it was kept in goes straight to the output. Training samples the decisions with
a straight-through Gumbel-softmax and adds `skim_coefficient` x (mean kept fraction over layers) to the loss.

Differences from the official code (ChandlerGuan/Transkimmer), each a bug its author acknowledged or a fix
listed in our research notes:

- Attention hides skimmed keys with a masked softmax (weights renormalised over kept keys), not by multiplying
  the softmax output by the mask (the author's "bug in our design", issues #2/#3).
- Evaluation is deterministic (keep where keep-logit > skim-logit); the original samples Gumbel noise at eval.
- Padding is never "kept" or "skimmed": it is excluded from the skim loss and from the kept-fraction figures
  (the original divides by the padded length, so skimming padding lowered the loss and ratios exceeded 1).
- At inference skimmed tokens are removed for real, at any batch size, on the packed engine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.models.bert.modeling_bert import BertLayer

from .bert_layer_forward import masked_layer_forward
from .configuration_transkimmer import TranskimmerConfig
from .modeling_token_pruning import (
    EncoderResult,
    TokenPruningForQuestionAnswering,
    TokenPruningForSequenceClassification,
    TokenPruningForTokenClassification,
    TokenPruningModel,
    TokenPruningPreTrainedModel,
    packed_layers_with_selector,
)
from .token_engine import PackedBatch

KEEP, SKIM = 1, 0  # predictor output channels, as in the official code


class TranskimmerSkimClassifier(nn.Linear):
    """The predictor's last Linear(width, 2), a class of its own so `_init_weights` can give it the unbalanced bias."""


class TranskimmerSkimPredictor(nn.Module):
    """LayerNorm -> Linear -> LayerNorm -> GELU -> Linear(2): logits of (skim, keep) for each token."""

    def __init__(self, config: TranskimmerConfig):
        super().__init__()
        width = config.skim_predictor_hidden_size or config.hidden_size
        self.input_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dense = nn.Linear(config.hidden_size, width)
        self.hidden_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.activation = nn.GELU()
        self.classifier = TranskimmerSkimClassifier(width, 2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.activation(self.hidden_norm(self.dense(self.input_norm(hidden)))))


class TranskimmerEncoder(nn.Module):
    """`layer.N` are BERT's layers (checkpoint names unchanged); `skim_predictors.N` runs before layer N."""

    def __init__(self, config: TranskimmerConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList(BertLayer(config, layer_idx=i) for i in range(config.num_hidden_layers))
        self.skim_predictors = nn.ModuleList(TranskimmerSkimPredictor(config) for _ in range(config.num_hidden_layers))

    def skim_loss(self, kept_per_layer: torch.Tensor, real_tokens: torch.Tensor) -> torch.Tensor:
        """`skim_coefficient` x mean over layers of (kept real tokens / real tokens), token-weighted over the batch."""
        return self.config.skim_coefficient * (kept_per_layer.sum(0) / real_tokens).mean()

    def _keep_decision(self, logits: torch.Tensor) -> torch.Tensor:
        """0/1 keep values; in training a straight-through Gumbel sample, so gradients reach the predictor."""
        if self.training:
            return F.gumbel_softmax(logits, tau=self.config.skim_gumbel_tau, hard=True)[..., KEEP]
        return (logits[..., KEEP] > logits[..., SKIM]).to(logits.dtype)

    def forward_masked(
        self, hidden: torch.Tensor, padding_mask: torch.Tensor, prune: bool, output_hidden_states: bool, output_attentions: bool
    ) -> EncoderResult:
        """Padded form: skimmed tokens stay in the tensor, hidden from attention by a cumulative mask."""
        mask = padding_mask.to(hidden.dtype)  # [B, S]; 1 = token still in the encoder
        forwarded = hidden  # each token's state from the last layer that kept it
        # Recorded per-layer states are `forwarded`, as in the packed engine: skimmed tokens at their last state.
        kept_counts, all_hidden, all_attentions = [], [hidden], []
        for layer, predictor in zip(self.layer, self.skim_predictors):
            if prune:
                keep = self._keep_decision(predictor(hidden))
                keep = torch.cat([torch.ones_like(keep[:, :1]), keep[:, 1:]], dim=1)  # [CLS] is never skimmed
                mask = mask * keep  # cumulative: a skimmed token never returns
            kept_counts.append(mask.sum(dim=1))
            hidden, probs = masked_layer_forward(layer, hidden, padding_mask, key_weights=mask if prune else None)
            forwarded = forwarded + (hidden - forwarded) * mask[..., None] if prune else hidden
            all_hidden.append(forwarded)
            all_attentions.append(probs)
        kept_per_layer = torch.stack(kept_counts, dim=1)  # [B, L], differentiable through the Gumbel samples
        return EncoderResult(
            last_hidden_state=forwarded,
            tokens_per_layer=kept_per_layer.detach().round().long(),
            pruning_loss=self.skim_loss(kept_per_layer, padding_mask.sum()),
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )

    def forward_packed(
        self, batch: PackedBatch, attention_backend: str, prune: bool, output_hidden_states: bool
    ) -> tuple[PackedBatch, EncoderResult]:
        """Packed form: skimmed tokens are removed; the engine's restore buffer forwards them to the output."""
        real_tokens = batch.num_tokens

        def keep(index: int, batch: PackedBatch) -> torch.Tensor:
            logits = self.skim_predictors[index](batch.hidden)  # [N, 2]
            return (logits[:, KEEP] > logits[:, SKIM]) | batch.first_token_mask()

        batch, result = packed_layers_with_selector(self.layer, batch, attention_backend, keep if prune else None, output_hidden_states)
        result.pruning_loss = self.skim_loss(result.tokens_per_layer.float(), real_tokens)
        return batch, result


class TranskimmerPreTrainedModel(TokenPruningPreTrainedModel):
    config_class = TranskimmerConfig
    config: TranskimmerConfig

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, TranskimmerSkimClassifier):
            # Unbalanced init: keep logit +bias, skim logit -bias (std 0.02 as in the paper), so every token is kept
            # at the start of training. init.copy_ leaves a bias loaded from a checkpoint untouched. The hook is on
            # this Linear, not the predictor: HF skips init calls on modules without parameters of their own.
            bias = self.config.skim_init_bias
            start = torch.zeros(2)
            start[KEEP], start[SKIM] = bias, -bias
            init.copy_(module.bias, start + 0.02 * torch.randn(2))


class TranskimmerModel(TranskimmerPreTrainedModel, TokenPruningModel):
    encoder_class = TranskimmerEncoder


class TranskimmerForSequenceClassification(TranskimmerPreTrainedModel, TokenPruningForSequenceClassification):
    model_class = TranskimmerModel


class TranskimmerForQuestionAnswering(TranskimmerPreTrainedModel, TokenPruningForQuestionAnswering):
    model_class = TranskimmerModel


class TranskimmerForTokenClassification(TranskimmerPreTrainedModel, TokenPruningForTokenClassification):
    model_class = TranskimmerModel


__all__ = [
    "TranskimmerForQuestionAnswering",
    "TranskimmerForSequenceClassification",
    "TranskimmerForTokenClassification",
    "TranskimmerModel",
    "TranskimmerPreTrainedModel",
    "TranskimmerSkimPredictor",
]
