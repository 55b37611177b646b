"""`adapler-bert`: AdapLeR (Modarressi et al., "AdapLeR: Speeding up Inference by Adaptive Length Reduction", ACL 2022).

Before every layer a contribution predictor turns each live token's state into a share of the example (a
softmax over its live tokens); a token whose share is below eta_l / n (n = live tokens, eta_l learned per layer)
leaves the encoder, its last state forwarded to the output; [CLS] always stays. Training removes tokens softly:
a piecewise-linear log-mask, whose sharpness is annealed over training, weighs them down as attention keys;
the loss adds `gamma` x a depth-weighted KL between gradient-x-input saliencies of the fine-tuned BERT
(`transformers-prune saliency`) and the predictors' shares, and `phi` x the soft length, whose gradient only
eta receives. Inference removes the tokens for real on the packed engine, at any batch size.

Differences from the official code (amodaresi/AdapLeR, TensorFlow), each listed in our research notes:

- Inference drops tokens at any batch size on the packed engine; the original's removal mode needs batch size 1
  and its reported figures come from masking plus fitted FLOP formulas.
- eta is a bounded reparametrised parameter trained by the one optimizer (`eta_lr_scale`), not a second
  optimizer with clipping; sharpness follows training progress (callback), not a per-epoch schedule.
- One loss and one optimizer stand for the original's two tapes, with each gradient path kept: the task loss
  reaches BERT, the predictors and eta through the soft mask; the KL reaches the predictors and BERT, also
  through the soft mask of earlier layers, which it sees computed with eta held fixed (eta is not on the
  original's main tape; a second-order part still reaches eta and THETA through the hidden states of later
  layers, small at the original's gamma of 0.005); the length term reaches eta only. THETA is learned as in the original, including its
  quirk: it scales [CLS]'s share of the KL target and is moved by the gradient that the task loss and the
  length term send to THETA_PR (the factor on [CLS]'s predicted share, which stays 1), divided by THETA.
  `kl_through_mask=False` and `train_theta=False` give the behaviour of transformers_prune 0.1.
- Padding never counts: it gets no share, no saliency, and does not enter the soft length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import logging

from .configuration_adapler import AdapLeRConfig
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
from .token_views import GridView, TokenView

logger = logging.get_logger(__name__)

KL_CLIP = 1e-7  # Keras' kl_divergence clips both distributions to [1e-7, 1], as the original's loss does


def soft_removal_log_mask(shares: torch.Tensor, thresholds: torch.Tensor, sharpness: float, beta: float) -> torch.Tensor:
    """The original's piecewise-linear log-mask S(x) <= 0: a steep ramp (slope sharpness / threshold) below the
    threshold, an almost flat one (total drop beta / sharpness) above; both meet at the threshold. Clamped at
    -10000 as the original's additive attention mask. As sharpness grows, exp(S) tends to the hard 0/1 mask."""
    below = (sharpness / thresholds) * (shares - thresholds) - beta / sharpness
    above = (beta / (sharpness * (1 - thresholds))) * (shares - 1)
    return torch.where(shares < thresholds, below, above).clamp(min=-10000.0, max=0.0)


def kl_divergence(target: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """`[B]` KL(target || predicted) over the sequence, both clipped to [1e-7, 1]."""
    target, predicted = target.clamp(KL_CLIP, 1.0), predicted.clamp(KL_CLIP, 1.0)
    return (target * (target / predicted).log()).sum(dim=-1)


class AdapLeRContributionPredictor(nn.Module):
    """Linear(hidden, cp_hidden_size) -> GELU -> Linear(cp_hidden_size, 1), times `cp_lr_scale`: one logit per
    token."""

    def __init__(self, config: AdapLeRConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.cp_hidden_size)
        self.activation = nn.GELU()
        self.output = LogitScaledLinear(config.cp_hidden_size, 1, config.cp_lr_scale)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(self.activation(self.dense(hidden))).squeeze(-1)


@dataclass
class SoftRemovalState:
    """One training forward's soft removal. Three recurrences of the same presence values, each for one gradient
    path (see the module docstring): `view.presence` for attention and the task loss; `kl_presence` with eta held
    fixed, for the KL; `eta_presence` on detached predictor logits, for the length term. Also the per-layer KL
    terms and soft lengths the loss sums."""

    etas: torch.Tensor  # [L]
    theta: torch.Tensor  # [L - 1]
    target: torch.Tensor | None  # [B, S] saliency on real tokens
    kl_presence: torch.Tensor  # [B, S]
    eta_presence: torch.Tensor  # [B, S]
    kl_terms: list[torch.Tensor] = field(default_factory=list)
    soft_lengths: list[torch.Tensor] = field(default_factory=list)


class AdapLeREncoder(TokenPruningEncoder):
    """`contribution_predictors.N` runs before layer N; `eta_logits[N]` parametrises layer N's eta,
    `theta_offsets[N - 1]` layer N's THETA. A token whose share of its example is below eta_l / n (n = tokens
    still in the encoder) leaves before layer l."""

    def __init__(self, config: AdapLeRConfig):
        super().__init__(config)
        self.contribution_predictors = nn.ModuleList(AdapLeRContributionPredictor(config) for _ in range(config.num_hidden_layers))
        self.eta_logits = nn.Parameter(torch.full((config.num_hidden_layers,), self.initial_eta_logit(config)))
        self.theta_offsets = nn.Parameter(torch.zeros(config.num_hidden_layers - 1))
        self.sharpness = float(config.sharpness_start)

    @staticmethod
    def initial_eta_logit(config: AdapLeRConfig) -> float:
        fraction = (config.eta_init - config.eta_min) / (config.eta_max - config.eta_min)
        return math.log(fraction / (1 - fraction)) / config.eta_lr_scale

    def etas(self) -> torch.Tensor:
        """`[L]` eta of each layer, within [eta_min, eta_max]."""
        config = self.config
        return config.eta_min + (config.eta_max - config.eta_min) * torch.sigmoid(config.eta_lr_scale * self.eta_logits)

    def theta(self) -> torch.Tensor:
        """`[L - 1]` THETA of layers 1 .. L - 1: 1 plus `theta_lr_scale` x the learned offset (1 when not trained)."""
        if not self.config.train_theta:
            return torch.ones_like(self.theta_offsets)
        return 1 + self.config.theta_lr_scale * self.theta_offsets

    def set_training_progress(self, fraction: float) -> None:
        """Anneal the soft mask's sharpness geometrically from `sharpness_start` (fraction 0) to `sharpness_end` (1)."""
        start, end = self.config.sharpness_start, self.config.sharpness_end
        self.sharpness = start * (end / start) ** min(max(fraction, 0.0), 1.0)

    def decision_point(self, index: int) -> str:
        return BEFORE_LAYER

    def removal(self) -> str:
        return "soft_keys" if self.training else "hard"

    def begin(self, trace: SelectionTrace, view: TokenView) -> None:
        if not self.training:
            trace.method = self.etas().detach() * self.config.eta_scale
            return
        target = self._saliency_target(trace.inputs.get("saliency"), view)
        trace.method = SoftRemovalState(self.etas(), self.theta(), target, view.presence, view.presence)

    def keep_values(self, index: int, view: TokenView, trace: SelectionTrace, received=None) -> torch.Tensor:
        """Inference: share >= eta_l / n. Training: the soft mask exp(S(share)), which multiplies each token's
        presence; the KL and length terms of this layer are recorded for the loss."""
        logits = self.contribution_predictors[index](view.hidden)
        if not self.training:
            etas = trace.method
            return view.segment_softmax(logits) >= etas[index] / view.per_token(view.counts())
        state = trace.method
        # THETA_PR, the factor on [CLS]'s predicted share: 1 in value; its gradient, divided by THETA, moves THETA.
        theta_pr = None
        if index > 0 and self.config.train_theta:
            theta = state.theta[index - 1]
            theta_pr = 1 + (theta - theta.detach()) / theta.detach()
        keep = self._soft_keep(self._cls_scaled(view.segment_softmax(logits), theta_pr, view), state.etas[index], view)

        kl_view = GridView(view.hidden, state.kl_presence if self.config.kl_through_mask else view.presence.detach(), view.real)
        if state.target is not None:
            depth_weight = self.config.num_hidden_layers - index  # early layers count more
            cls_target_scale = state.theta[index - 1].detach().clamp_min(1e-3) if index > 0 else None
            state.kl_terms.append(depth_weight * self._gated_kl(state.target, logits, kl_view, cls_target_scale))
        if self.config.kl_through_mask:
            kl_keep = self._soft_keep(kl_view.segment_softmax(logits), state.etas[index].detach(), kl_view)
            state.kl_presence = kl_view.presence * self._protect_first(kl_keep, view)

        eta_view = GridView(view.hidden, state.eta_presence, view.real)
        eta_shares = self._cls_scaled(eta_view.segment_softmax(logits.detach()), theta_pr, view)
        eta_keep = self._soft_keep(eta_shares, state.etas[index], eta_view)
        state.eta_presence = state.eta_presence * self._protect_first(eta_keep, view)
        state.soft_lengths.append(eta_view.segment_sum(state.eta_presence))
        return keep

    @staticmethod
    def _protect_first(keep: torch.Tensor, view: TokenView) -> torch.Tensor:
        return torch.where(view.first_token, torch.ones_like(keep), keep)

    @staticmethod
    def _cls_scaled(shares: torch.Tensor, factor: torch.Tensor | None, view: TokenView) -> torch.Tensor:
        """Shares with [CLS]'s multiplied by `factor`, renormalised (unchanged when `factor` is None)."""
        if factor is None:
            return shares
        scaled = torch.where(view.first_token, shares * factor, shares)
        return scaled / view.per_token(view.segment_sum(scaled))

    def _soft_keep(self, shares: torch.Tensor, eta: torch.Tensor, view: GridView) -> torch.Tensor:
        """exp(S(share)) with the threshold eta / n, n = the expected number of tokens in the encoder (the +1 of
        the original's `n` is [CLS], whose presence is always 1); 1 where the token is already gone."""
        thresholds = eta / view.per_token(view.counts())
        log_mask = soft_removal_log_mask(shares, thresholds, self.sharpness, self.config.soft_removal_beta)
        return torch.exp(log_mask * view.presence)

    def _saliency_target(self, saliency: torch.Tensor | None, view: GridView) -> torch.Tensor | None:
        real = view.presence
        if saliency is None:
            if self.config.gamma > 0:
                logger.warning_once(
                    "adapler-bert is training without `saliency` inputs, so without its KL term (gamma); compute them "
                    "with `transformers-prune saliency` and train on the file it writes"
                )
            return None
        if saliency.dim() != 2 or saliency.shape[0] != real.shape[0]:
            raise ValueError(f"saliency must be [batch, seq_len], got shape {tuple(saliency.shape)} for inputs {tuple(real.shape)}")
        seq_len = real.shape[1]
        saliency = saliency[:, :seq_len].to(real.dtype)  # files store them padded to max_length
        if saliency.shape[1] < seq_len:
            raise ValueError(f"saliency covers {saliency.shape[1]} positions, the inputs have {seq_len}")
        return saliency.clamp(min=0) * real

    def _gated_kl(
        self, target: torch.Tensor, logits: torch.Tensor, view: GridView, cls_target_scale: torch.Tensor | None
    ) -> torch.Tensor:
        """Mean over the batch of KL(saliency target || shares) on the view's presence: the target is the saliency
        on present tokens, [CLS]'s part scaled by THETA (layers >= 1), renormalised. Each example is gated by its
        largest surviving non-[CLS] presence (about 0 once everything is gone), as the original's
        `compute_head_lossV5`."""
        presence = view.presence
        weighted = target * presence
        if cls_target_scale is not None:
            weighted = torch.where(view.first_token, weighted * cls_target_scale, weighted)
        target_shares = weighted / weighted.sum(dim=1, keepdim=True).clamp_min(KL_CLIP)
        gate = presence.detach().masked_fill(view.first_token, 0).amax(dim=1)
        return (gate * kl_divergence(target_shares, view.segment_softmax(logits, presence))).mean()

    def pruning_loss(self, trace: SelectionTrace) -> torch.Tensor:
        """`phi` x the soft length (tokens processed, summed over layers, mean over the batch) + `gamma` x the
        summed depth-weighted KL terms."""
        state = trace.method
        loss = self.config.phi * torch.stack(state.soft_lengths, dim=1).sum(dim=1).mean()
        if state.kl_terms:
            loss = loss + self.config.gamma * torch.stack(state.kl_terms).sum()
        return loss


class AdapLeRPreTrainedModel(TokenPruningPreTrainedModel):
    config_class = AdapLeRConfig
    config: AdapLeRConfig

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, AdapLeREncoder):
            # eta starts at eta_init and THETA at 1; a loaded checkpoint's learned values are kept.
            init.constant_(module.eta_logits, AdapLeREncoder.initial_eta_logit(self.config))
            init.zeros_(module.theta_offsets)


class AdapLeRModel(AdapLeRPreTrainedModel, TokenPruningModel):
    encoder_class = AdapLeREncoder
    method_input_names = ("saliency",)


# The heads name `saliency` in their signatures because `Trainer` drops dataset columns that the model's forward
# signature does not list; through **kwargs alone the targets would never reach the model.


class AdapLeRForSequenceClassification(AdapLeRPreTrainedModel, TokenPruningForSequenceClassification):
    model_class = AdapLeRModel

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, saliency=None, **kwargs):
        """As `BertForSequenceClassification`, plus `saliency` (`[B, S]` targets of the predictors, training only)."""
        return super().forward(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, labels, saliency=saliency, **kwargs)


class AdapLeRForQuestionAnswering(AdapLeRPreTrainedModel, TokenPruningForQuestionAnswering):
    model_class = AdapLeRModel

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                start_positions=None, end_positions=None, saliency=None, **kwargs):
        """As `BertForQuestionAnswering`, plus `saliency` (`[B, S]` targets of the predictors, training only)."""
        return super().forward(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, start_positions, end_positions,
            saliency=saliency, **kwargs,
        )


class AdapLeRForTokenClassification(AdapLeRPreTrainedModel, TokenPruningForTokenClassification):
    model_class = AdapLeRModel

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, saliency=None, **kwargs):
        """As `BertForTokenClassification`, plus `saliency` (`[B, S]` targets of the predictors, training only)."""
        return super().forward(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, labels, saliency=saliency, **kwargs)


__all__ = [
    "AdapLeRContributionPredictor",
    "AdapLeRForQuestionAnswering",
    "AdapLeRForSequenceClassification",
    "AdapLeRForTokenClassification",
    "AdapLeRModel",
    "AdapLeRPreTrainedModel",
    "soft_removal_log_mask",
]
