"""`transkimmer-bert`: Transkimmer (Guan et al., "Transkimmer: Transformer Learns to Layer-wise Skim", ACL 2022).

A small predictor before every layer decides, per token, keep or skim. A skimmed token leaves the encoder:
its state from the last layer it was kept in goes straight to the output. Training samples the decisions with
a straight-through Gumbel-softmax and adds `skim_coefficient` x (kept tokens per padded position, mean over
layers) to the loss, the original's skim loss.

Differences from the official code (ChandlerGuan/Transkimmer), each a bug its author acknowledged or a fix
listed in our research notes:

- Attention hides skimmed keys with a masked softmax (weights renormalised over kept keys), not by multiplying
  the softmax output by the mask (the author's "bug in our design", issues #2/#3).
- Evaluation is deterministic (keep where keep-logit > skim-logit); the original samples Gumbel noise at eval.
- Padding is never "kept" or "skimmed": the skim loss counts kept real tokens only (the original also counted
  padding positions' sampled decisions, so skimming padding lowered its loss). It still divides by the padded
  positions as the original does, so each real token is pushed as hard as there and `skim_coefficient` keeps
  the official scripts' values.
- At inference skimmed tokens are removed for real, at any batch size, on the packed engine.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from .configuration_transkimmer import TranskimmerConfig
from .modeling_token_pruning import (
    LogitScaledLinear,
    TokenPruningEncoder,
    TokenPruningForQuestionAnswering,
    TokenPruningForSequenceClassification,
    TokenPruningForTokenClassification,
    TokenPruningModel,
    TokenPruningPreTrainedModel,
)
from .token_selection import BEFORE_LAYER, SelectionTrace
from .token_views import TokenView

KEEP, SKIM = 1, 0  # predictor output channels, as in the official code


class TranskimmerSkimClassifier(LogitScaledLinear):
    """The predictor's last Linear(width, 2), a class of its own so `_init_weights` can give it the unbalanced bias."""


class TranskimmerSkimPredictor(nn.Module):
    """LayerNorm -> Linear -> LayerNorm -> GELU -> Linear(2), times `skim_lr_scale`: logits of (skim, keep) for
    each token."""

    def __init__(self, config: TranskimmerConfig):
        super().__init__()
        width = config.skim_predictor_hidden_size or config.hidden_size
        self.input_norm = nn.LayerNorm(config.hidden_size)  # eps 1e-5, as the original's predictor
        self.dense = nn.Linear(config.hidden_size, width)
        self.hidden_norm = nn.LayerNorm(width)
        self.activation = nn.GELU()
        self.classifier = TranskimmerSkimClassifier(width, 2, config.skim_lr_scale)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.activation(self.hidden_norm(self.dense(self.input_norm(hidden)))))


class TranskimmerEncoder(TokenPruningEncoder):
    """`skim_predictors.N` decides before layer N which tokens it still processes; skimmed tokens never return."""

    def __init__(self, config: TranskimmerConfig):
        super().__init__(config)
        self.skim_predictors = nn.ModuleList(TranskimmerSkimPredictor(config) for _ in range(config.num_hidden_layers))

    def decision_point(self, index: int) -> str:
        return BEFORE_LAYER

    def keep_values(self, index: int, view: TokenView, trace: SelectionTrace, received=None) -> torch.Tensor:
        """In training a straight-through Gumbel sample (0/1 values whose gradient reaches the predictor), else
        keep where the keep probability is above `keep_threshold` (0.5: where the keep logit beats the skim logit)."""
        logits = self.skim_predictors[index](view.hidden)  # [..., 2]
        if self.training:
            return F.gumbel_softmax(logits, tau=self.config.skim_gumbel_tau, hard=True)[..., KEEP]
        threshold = self.config.keep_threshold
        return logits[..., KEEP] - logits[..., SKIM] > math.log(threshold / (1 - threshold))

    def pruning_loss(self, trace: SelectionTrace) -> torch.Tensor:
        """`skim_coefficient` x the mean over layers of the kept real tokens per padded position of the batch."""
        kept_per_layer = torch.stack(trace.kept_counts, dim=1)  # [B, L], differentiable through the Gumbel samples
        return self.config.skim_coefficient * (kept_per_layer.sum(0) / trace.padded_positions).mean()


class TranskimmerPreTrainedModel(TokenPruningPreTrainedModel):
    config_class = TranskimmerConfig
    config: TranskimmerConfig

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, TranskimmerSkimClassifier):
            # Unbalanced init: keep logit +bias, skim logit -bias (std 0.02 as in the paper), so every token is kept
            # at the start of training; in the layer's units (divided by its scale), so the logits start the same at
            # any `skim_lr_scale`. init.copy_ leaves a bias loaded from a checkpoint untouched. The hook is on this
            # Linear, not the predictor: HF skips init calls on modules without parameters of their own.
            bias = self.config.skim_init_bias
            start = torch.zeros(2)
            start[KEEP], start[SKIM] = bias, -bias
            init.copy_(module.bias, (start + 0.02 * torch.randn(2)) / module.scale)


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
