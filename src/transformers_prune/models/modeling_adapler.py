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
- THETA, which the original only uses to rescale [CLS] in the KL target and whose companion THETA_PR never
  changes, is left out: [CLS] keeps its saliency share.
- One loss, one optimizer, where the original uses two tapes: the length term is formed on detached shares, so
  its gradient reaches eta only; the KL is formed on detached survival masks, so its direct gradient never
  reaches eta, though a second-order part does, through the hidden states of later layers (small: gamma is
  0.005 in the original's SST-2 recipe).
- Padding never counts: it gets no share, no saliency, and does not enter the soft length.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from transformers import initialization as init
from transformers.models.bert.modeling_bert import BertLayer
from transformers.utils import logging

from .bert_layer_forward import masked_layer_forward
from .configuration_adapler import AdapLeRConfig
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

logger = logging.get_logger(__name__)

KL_CLIP = 1e-7  # Keras' kl_divergence clips both distributions to [1e-7, 1], as the original's loss does


def soft_removal_log_mask(shares: torch.Tensor, thresholds: torch.Tensor, sharpness: float, beta: float) -> torch.Tensor:
    """The original's piecewise-linear log-mask S(x) <= 0: a steep ramp (slope sharpness / threshold) below the
    threshold, an almost flat one (total drop beta / sharpness) above; both meet at the threshold. Clamped at
    -10000 as the original's additive attention mask. As sharpness grows, exp(S) tends to the hard 0/1 mask."""
    below = (sharpness / thresholds) * (shares - thresholds) - beta / sharpness
    above = (beta / (sharpness * (1 - thresholds))) * (shares - 1)
    return torch.where(shares < thresholds, below, above).clamp(min=-10000.0, max=0.0)


def renormalised_shares(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """softmax(logits) x weights, renormalised to sum to 1 over the sequence (`weights` 0 on padding)."""
    shares = torch.softmax(logits.masked_fill(weights == 0, -math.inf), dim=-1) * weights
    return shares / shares.sum(dim=-1, keepdim=True)


def kl_divergence(target: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """`[B]` KL(target || predicted) over the sequence, both clipped to [1e-7, 1]."""
    target, predicted = target.clamp(KL_CLIP, 1.0), predicted.clamp(KL_CLIP, 1.0)
    return (target * (target / predicted).log()).sum(dim=-1)


class AdapLeRContributionPredictor(nn.Module):
    """Linear(hidden, cp_hidden_size) -> GELU -> Linear(cp_hidden_size, 1): one logit per token."""

    def __init__(self, config: AdapLeRConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.cp_hidden_size)
        self.activation = nn.GELU()
        self.output = nn.Linear(config.cp_hidden_size, 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(self.activation(self.dense(hidden))).squeeze(-1)


class AdapLeREncoder(nn.Module):
    """`layer.N` are BERT's layers (checkpoint names unchanged); `contribution_predictors.N` runs before layer N;
    `eta_logits[N]` parametrises layer N's eta."""

    def __init__(self, config: AdapLeRConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList(BertLayer(config, layer_idx=i) for i in range(config.num_hidden_layers))
        self.contribution_predictors = nn.ModuleList(AdapLeRContributionPredictor(config) for _ in range(config.num_hidden_layers))
        self.eta_logits = nn.Parameter(torch.full((config.num_hidden_layers,), self.initial_eta_logit(config)))
        self.sharpness = float(config.sharpness_start)

    @staticmethod
    def initial_eta_logit(config: AdapLeRConfig) -> float:
        fraction = (config.eta_init - config.eta_min) / (config.eta_max - config.eta_min)
        return math.log(fraction / (1 - fraction)) / config.eta_lr_scale

    def etas(self) -> torch.Tensor:
        """`[L]` eta of each layer, within [eta_min, eta_max]."""
        config = self.config
        return config.eta_min + (config.eta_max - config.eta_min) * torch.sigmoid(config.eta_lr_scale * self.eta_logits)

    def set_training_progress(self, fraction: float) -> None:
        """Anneal the soft mask's sharpness geometrically from `sharpness_start` (fraction 0) to `sharpness_end` (1)."""
        start, end = self.config.sharpness_start, self.config.sharpness_end
        self.sharpness = start * (end / start) ** min(max(fraction, 0.0), 1.0)

    def forward_masked(
        self,
        hidden: torch.Tensor,
        padding_mask: torch.Tensor,
        prune: bool,
        output_hidden_states: bool,
        output_attentions: bool,
        saliency: torch.Tensor | None = None,
    ) -> EncoderResult:
        """Padded form. Training: soft removal (survival masks weigh tokens down as attention keys) and the
        losses. Evaluation: hard removal by masks, dropped tokens keeping the state they had when dropped."""
        soft = prune and self.training
        real = padding_mask.to(hidden.dtype)
        droppable = torch.cat([torch.zeros_like(real[:, :1]), real[:, 1:]], dim=1)  # every real token but [CLS]
        etas = self.etas() if self.training else self.etas().detach() * self.config.eta_scale
        survival = real  # 1 = in the encoder; soft in training
        eta_survival = real  # the same recurrence on detached shares: the length term's gradient reaches eta only
        target = self._saliency_target(saliency, real) if soft else None
        state, kept_counts, all_hidden, all_attentions = hidden, [], [hidden], []
        kl_terms, soft_lengths = [], []
        num_layers = self.config.num_hidden_layers
        for index, (layer, predictor) in enumerate(zip(self.layer, self.contribution_predictors)):
            if prune:
                logits = predictor(state)
                shares = renormalised_shares(logits, survival)
                thresholds = etas[index] / ((survival * droppable).sum(dim=1, keepdim=True) + 1)
                if soft:
                    if target is not None:
                        kl_terms.append((num_layers - index) * self._gated_kl(target, logits, survival.detach(), droppable))
                    log_mask = soft_removal_log_mask(shares, thresholds, self.sharpness, self.config.soft_removal_beta)
                    survival = survival * torch.exp(log_mask * survival * droppable)
                    eta_survival = self._detached_share_step(logits, eta_survival, etas[index], droppable)
                    soft_lengths.append((eta_survival * droppable).sum(dim=1) + 1)
                else:
                    survival = survival * ((shares >= thresholds) | (droppable == 0)).to(survival.dtype)
            kept_counts.append(survival.sum(dim=1))
            output, probs = masked_layer_forward(layer, state, padding_mask, key_weights=survival if prune else None)
            # Hard: a dropped token keeps its last state (as the packed engine forwards it); soft: nothing leaves.
            state = state + (output - state) * survival[..., None] if prune and not soft else output
            all_hidden.append(state)
            all_attentions.append(probs)
        return EncoderResult(
            last_hidden_state=state,
            tokens_per_layer=torch.stack(kept_counts, dim=1).detach().round().long(),
            pruning_loss=self._loss(kl_terms, soft_lengths) if soft else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )

    def _saliency_target(self, saliency: torch.Tensor | None, real: torch.Tensor) -> torch.Tensor | None:
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

    def _gated_kl(self, target, logits, survival, droppable) -> torch.Tensor:
        """Mean over the batch of KL(saliency target || shares), each example gated by its largest surviving
        non-[CLS] mask value (about 0 once everything is gone), as the original's `compute_head_lossV5`."""
        weighted = target * survival
        target_shares = weighted / weighted.sum(dim=1, keepdim=True).clamp_min(KL_CLIP)
        gate = (survival * droppable).amax(dim=1)
        return (gate * kl_divergence(target_shares, renormalised_shares(logits, survival))).mean()

    def _detached_share_step(self, logits, eta_survival, eta, droppable) -> torch.Tensor:
        shares = renormalised_shares(logits.detach(), eta_survival)
        thresholds = eta / ((eta_survival * droppable).sum(dim=1, keepdim=True) + 1)
        log_mask = soft_removal_log_mask(shares, thresholds, self.sharpness, self.config.soft_removal_beta)
        return eta_survival * torch.exp(log_mask * eta_survival * droppable)

    def _loss(self, kl_terms: list[torch.Tensor], soft_lengths: list[torch.Tensor]) -> torch.Tensor:
        length = torch.stack(soft_lengths, dim=1).sum(dim=1).mean()  # tokens processed, summed over layers
        loss = self.config.phi * length
        if kl_terms:
            loss = loss + self.config.gamma * torch.stack(kl_terms).sum()
        return loss

    def forward_packed(
        self, batch: PackedBatch, attention_backend: str, prune: bool, output_hidden_states: bool
    ) -> tuple[PackedBatch, EncoderResult]:
        """Packed form: each predictor's shares are a softmax over each example's live tokens; tokens below
        eta_l / n are removed before layer l and the restore buffer forwards them to the output."""
        etas = self.etas().detach() * self.config.eta_scale

        def keep(index: int, batch: PackedBatch) -> torch.Tensor:
            shares = self._packed_shares(self.contribution_predictors[index](batch.hidden), batch)
            return (shares >= etas[index] / batch.seqlens()[batch.example_ids()]) | batch.first_token_mask()

        return packed_layers_with_selector(self.layer, batch, attention_backend, keep if prune else None, output_hidden_states)

    @staticmethod
    def _packed_shares(logits: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
        """Softmax of `[N]` logits within each example."""
        example = batch.example_ids()
        maxima = logits.new_full((batch.batch_size,), -math.inf).scatter_reduce(0, example, logits, "amax")
        exp = torch.exp(logits - maxima[example])
        return exp / exp.new_zeros(batch.batch_size).index_add(0, example, exp)[example]


class AdapLeRPreTrainedModel(TokenPruningPreTrainedModel):
    config_class = AdapLeRConfig
    config: AdapLeRConfig

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, AdapLeREncoder):
            # eta starts at eta_init; a loaded checkpoint's learned values are kept.
            init.constant_(module.eta_logits, AdapLeREncoder.initial_eta_logit(self.config))


class AdapLeRModel(AdapLeRPreTrainedModel, TokenPruningModel):
    encoder_class = AdapLeREncoder
    method_input_names = ("saliency",)


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
