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
- Scores are averaged over a fixed length (`scoring_mode="mean"`, the original's at its padded length 128) or
  over the live queries of the token's own example (`"mean_norm"`), never over the batch's padded length, so
  they do not change with batch padding; the regulariser's mean is over the same fixed length.
- Scores come from the attention probabilities before dropout, so training scores match evaluation's.
- Padding counts neither in the regulariser nor in kept fractions (the original's mean includes pad positions).
- Thresholds live in the checkpoint as `encoder.threshold_offsets`, trained by the stock `Trainer`'s one
  optimizer (the original used a second one, at the same learning rate, in a patched Trainer;
  `threshold_lr_scale` sets their relative speed), and on whatever device the model is on (the original
  hard-coded CUDA tensors).
- A token is pruned when its score is below the threshold; the original's extra floor of 1e-5 is dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init

from .configuration_ltp import LTPConfig
from .modeling_token_pruning import (
    TokenPruningEncoder,
    TokenPruningForQuestionAnswering,
    TokenPruningForSequenceClassification,
    TokenPruningForTokenClassification,
    TokenPruningModel,
    TokenPruningPreTrainedModel,
)
from .token_selection import AFTER_ATTENTION, SelectionTrace
from .token_views import TokenView


def topk_schedule(num_layers: int, token_keep_rate: float) -> list[float]:
    """Keep rate of each layer under top-k: 1 for the first max(3, ceil(0.15 L)) layers, then falling linearly
    to `token_keep_rate` at the last layer (the original's `CascadeTokenPruner`, floor 0.01 included)."""
    first_pruning = max(3, math.ceil(0.15 * num_layers))
    return [
        1.0 if layer < first_pruning
        else max(0.01, 1 + (token_keep_rate - 1) * (layer - first_pruning + 1) / (num_layers - first_pruning))
        for layer in range(num_layers)
    ]


@dataclass
class LTPForwardState:
    """What an LTP forward fixes before its first layer: the thresholds (differentiable in the soft stage, so the
    soft mask trains the offsets) and each input's real length (top-k counts are fractions of it)."""

    thresholds: torch.Tensor  # [L]
    real_lengths: torch.Tensor  # [B]


class LTPEncoder(TokenPruningEncoder):
    """`threshold_offsets[N]` is layer N's learned offset; a pruning layer decides after its attention."""

    def __init__(self, config: LTPConfig):
        super().__init__(config)
        self.threshold_offsets = nn.Parameter(torch.zeros(config.num_hidden_layers))

    def thresholds(self) -> torch.Tensor:
        """`[L]` threshold of each layer: `final_token_threshold * l / L` plus the learned offset."""
        num_layers = self.config.num_hidden_layers
        base = torch.arange(num_layers, device=self.threshold_offsets.device) * (self.config.final_token_threshold / num_layers)
        return base.to(self.threshold_offsets.dtype) + self.config.threshold_lr_scale * self.threshold_offsets

    def decision_point(self, index: int) -> str | None:
        """Layers with a positive base threshold (never layer 0), or a top-k keep rate below 1."""
        num_layers = self.config.num_hidden_layers
        if self.config.prune_mode == "topk":
            decides = topk_schedule(num_layers, self.config.token_keep_rate)[index] < 1
        else:
            decides = self.config.final_token_threshold * index / num_layers > 0
        return AFTER_ATTENTION if decides else None

    def removal(self) -> str:
        return "soft_output" if self.training and self.config.masking_mode == "soft" else "hard"

    def begin(self, trace: SelectionTrace, view: TokenView) -> None:
        thresholds = self.thresholds()
        if self.removal() == "soft_output":  # differentiable: the soft mask trains the offsets
            trace.method = LTPForwardState(thresholds, view.counts())
            return
        scale = 1.0 if self.training else self.config.threshold_scale
        trace.method = LTPForwardState(thresholds.detach() * scale, view.counts())

    def keep_values(self, index: int, view: TokenView, trace: SelectionTrace, received: torch.Tensor | None = None) -> torch.Tensor:
        """Soft stage: sigmoid((score - threshold) / temperature); else score >= threshold, or the input's top-k."""
        scores = self._normalise(received, view.per_token(view.counts()))
        state = trace.method
        if self.config.prune_mode == "topk":
            rate = topk_schedule(self.config.num_hidden_layers, self.config.token_keep_rate)[index]
            keep_counts = (state.real_lengths * rate).round().clamp_min(1)
            # [CLS] ranks first, so it takes one of the k places.
            ranks = view.segment_rank(torch.where(view.first_token, torch.full_like(scores, math.inf), scores))
            return ranks < view.per_token(keep_counts)
        if self.removal() == "soft_output":
            return torch.sigmoid((scores - state.thresholds[index]) / self.config.temperature)
        return scores >= state.thresholds[index]

    def _normalise(self, received: torch.Tensor, live_queries: torch.Tensor) -> torch.Tensor:
        """Summed attention received -> the mean over heads and queries that thresholds compare against."""
        length = live_queries if self.config.scoring_mode == "mean_norm" else self.config.score_normalization_length
        return received / (self.config.num_attention_heads * length)

    def pruning_loss(self, trace: SelectionTrace) -> torch.Tensor | None:
        """Soft stage: `lambda_threshold` x the sum over pruning layers of the mean soft mask over each input's
        `score_normalization_length` positions (see `LTPConfig.lambda_threshold`)."""
        if self.removal() != "soft_output" or not trace.decisions:
            return None
        positions = trace.kept_counts[0].shape[0] * self.config.score_normalization_length
        return self.config.lambda_threshold * torch.stack([mask.sum() / positions for mask in trace.decisions.values()]).sum()


class LTPPreTrainedModel(TokenPruningPreTrainedModel):
    config_class = LTPConfig
    config: LTPConfig

    def untrained_start_problem(self) -> str | None:
        # Measured on SST-2 from the pre-trained MiniLM: the thresholds drop 52% / 85% / 92% of the tokens at layers
        # 3 / 4 / 5 before any training, and run_glue.py ends at chance (49-60%) in both masking modes.
        return (
            "ltp's thresholds are set for the attention of a model fine-tuned on its task (the paper's soft stage "
            "starts from one): a pre-trained model's attention is concentrated on a few tokens, so most words are "
            "pruned before the task is learned and training ends at chance"
        )

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
