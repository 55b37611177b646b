"""What every token-pruning model type shares: outputs, the base model's engine dispatch, the task heads.

A method supplies an encoder module with two forwards:

- `forward_masked(hidden, padding_mask, prune, output_hidden_states, output_attentions) -> EncoderResult`:
  the padded, differentiable form (training, and `inference_engine="masked"`);
- `forward_packed(batch, attention_backend, prune, output_hidden_states) -> (PackedBatch, EncoderResult)`:
  hard decisions on the packed engine (inference).

and a subclass of each class here naming its config and encoder. Everything else (embeddings, input checks,
pooling, heads and their losses, kept-token statistics for the training callback) lives here once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers.modeling_outputs import ModelOutput
from transformers.models.bert.modeling_bert import BertEmbeddings, BertPooler, BertPreTrainedModel
from transformers.utils import can_return_tuple

from .checkpoint_files import HubCheckpointMixin
from .bert_layer_forward import packed_layer_forward
from .token_engine import (
    PackedBatch,
    checked_attention_mask,
    configured_attention_backend,
    drop_tokens,
    pack,
    unpack,
)


@dataclass
class EncoderResult:
    """What a method's encoder returns. `tokens_per_layer`: `[B, L]` real tokens entering each layer (`[B * K, L]`
    when training runs K rollouts per input); `action_log_prob`: `[B * K]` log-likelihood of each rollout's sampled
    keep/drop actions, for methods trained by policy gradient."""

    last_hidden_state: torch.Tensor | None
    tokens_per_layer: torch.Tensor
    pruning_loss: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    action_log_prob: torch.Tensor | None = None


def run_packed_layers(
    batch: PackedBatch,
    num_layers: int,
    layer_step: Callable[[int, PackedBatch], tuple[torch.Tensor, PackedBatch]],
    output_hidden_states: bool,
) -> tuple[PackedBatch, EncoderResult]:
    """The packed encoder loop every method shares. `layer_step(index, batch)` runs layer `index`, dropping what
    the method drops, and returns the `[B]` token counts entering that layer and the batch after it."""
    kept_counts, all_hidden = [], [unpack(batch)] if output_hidden_states else None
    for index in range(num_layers):
        entering, batch = layer_step(index, batch)
        kept_counts.append(entering)
        if output_hidden_states:
            all_hidden.append(unpack(batch))
    return batch, EncoderResult(
        last_hidden_state=None,
        tokens_per_layer=torch.stack(kept_counts, dim=1),
        hidden_states=tuple(all_hidden) if output_hidden_states else None,
    )


def packed_layers_with_selector(
    layers: nn.ModuleList,
    batch: PackedBatch,
    attention_backend: str,
    keep_before_layer: Callable[[int, PackedBatch], torch.Tensor | None] | None,
    output_hidden_states: bool,
) -> tuple[PackedBatch, EncoderResult]:
    """`run_packed_layers` for methods that decide before layers: `keep_before_layer(index, batch)` returns the
    `[N]` bool keep mask over the live tokens ([CLS] included), or None where it does not decide, and dropped
    tokens go to the restore buffer; `keep_before_layer=None` runs every token."""

    def layer_step(index: int, batch: PackedBatch) -> tuple[torch.Tensor, PackedBatch]:
        keep = keep_before_layer(index, batch) if keep_before_layer is not None else None
        if keep is not None:
            batch = drop_tokens(batch, keep)
        return batch.seqlens(), batch.with_hidden(packed_layer_forward(layers[index], batch, attention_backend))

    return run_packed_layers(batch, len(layers), layer_step, output_hidden_states)


@dataclass
class TokenPruningModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state: `[B, S, H]`; a dropped token holds its state from the last layer it was kept in.
        pooler_output: `[B, H]` pooled [CLS] state, when the model has a pooler.
        hidden_states: per-layer `[B, S, H]` states when `output_hidden_states=True`.
        attentions: per-layer attention probabilities when `output_attentions=True` (masked engine only).
        tokens_per_layer: `[B, L]` int64, real (non-padding) tokens of each example entering each layer.
        pruning_loss: the method's auxiliary loss, coefficient applied, as added to the task loss.
        action_log_prob: `[B * K]` log-likelihood of each training rollout's sampled actions (policy-gradient
            methods); the other outputs then have K rows per input.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    tokens_per_layer: torch.LongTensor | None = None
    pruning_loss: torch.FloatTensor | None = None
    action_log_prob: torch.FloatTensor | None = None


@dataclass
class TokenPruningSequenceClassifierOutput(ModelOutput):
    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    tokens_per_layer: torch.LongTensor | None = None
    pruning_loss: torch.FloatTensor | None = None
    action_log_prob: torch.FloatTensor | None = None


@dataclass
class TokenPruningQuestionAnsweringOutput(ModelOutput):
    loss: torch.FloatTensor | None = None
    start_logits: torch.FloatTensor | None = None
    end_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    tokens_per_layer: torch.LongTensor | None = None
    pruning_loss: torch.FloatTensor | None = None
    action_log_prob: torch.FloatTensor | None = None


@dataclass
class TokenPruningTokenClassifierOutput(ModelOutput):
    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    tokens_per_layer: torch.LongTensor | None = None
    pruning_loss: torch.FloatTensor | None = None
    action_log_prob: torch.FloatTensor | None = None


class TokenPruningPreTrainedModel(HubCheckpointMixin, BertPreTrainedModel):
    """BERT's weight layout and init, with the `Trainer` contract our auxiliary losses need."""

    # The loss is a per-batch mean plus an auxiliary term; Trainer must divide it by the accumulation steps.
    accepts_loss_kwargs = False
    # Layers run through `bert_layer_forward`, not `BertLayer.__call__`, so HF's checkpointing hook never fires.
    supports_gradient_checkpointing = False

    def pop_token_stats(self) -> dict[str, float]:
        """Mean kept fraction per layer over the training batches since the last call (see `KeepRatioCallback`)."""
        return self.base_model.pop_token_stats()

    def set_training_progress(self, fraction: float) -> None:
        """Tell a method with a training schedule (AdapLeR's soft-mask sharpness) how far training is, 0 to 1;
        the callback `import transformers_prune` installs calls it before every `Trainer` step."""
        set_progress = getattr(self.base_model.encoder, "set_training_progress", None)
        if set_progress is not None:
            set_progress(fraction)


class TokenPruningModel(TokenPruningPreTrainedModel):
    """BERT embeddings and pooler around a method's encoder; dispatches to the masked or packed forward."""

    encoder_class: type[nn.Module]
    # Extra inputs a method's training forward reads (e.g. AdapLeR's `saliency`), passed from the heads' kwargs.
    method_input_names: tuple[str, ...] = ()

    def __init__(self, config, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = self.encoder_class(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self._kept_fraction_sum: torch.Tensor | None = None
        self._kept_fraction_batches = 0
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> TokenPruningModelOutput:
        attention_mask = checked_attention_mask(input_ids, inputs_embeds, attention_mask)
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions

        hidden = self.embeddings(
            input_ids=input_ids, position_ids=position_ids, token_type_ids=token_type_ids, inputs_embeds=inputs_embeds
        )
        method_inputs = {name: kwargs[name] for name in self.method_input_names if kwargs.get(name) is not None}
        result = self.encode(hidden, attention_mask, output_hidden_states, output_attentions, method_inputs)
        if self.training:
            self._record_kept_fraction(result.tokens_per_layer, attention_mask)

        sequence_output = result.last_hidden_state
        return TokenPruningModelOutput(
            last_hidden_state=sequence_output,
            pooler_output=self.pooler(sequence_output) if self.pooler is not None else None,
            hidden_states=result.hidden_states,
            attentions=result.attentions,
            tokens_per_layer=result.tokens_per_layer,
            pruning_loss=result.pruning_loss,
            action_log_prob=result.action_log_prob,
        )

    def encode(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor,
        output_hidden_states: bool,
        output_attentions: bool,
        method_inputs: dict[str, torch.Tensor],
    ) -> EncoderResult:
        """Run the method's encoder on the embeddings: the masked form in training and for
        `inference_engine="masked"`, else the packed engine."""
        if self.training or self.config.inference_engine == "masked":
            prune = self.training or self.config.prune_at_inference
            return self.encoder.forward_masked(
                hidden, attention_mask.bool(), prune, output_hidden_states, output_attentions, **method_inputs
            )
        if output_attentions:
            raise ValueError("output_attentions needs inference_engine='masked'; the packed engine never forms attention maps")
        batch = pack(hidden, attention_mask, keep_restore_buffer=True)
        batch, result = self.encoder.forward_packed(
            batch, configured_attention_backend(self.config, hidden), self.config.prune_at_inference, output_hidden_states
        )
        result.last_hidden_state = unpack(batch)
        return result

    def _record_kept_fraction(self, tokens_per_layer: torch.Tensor, attention_mask: torch.Tensor) -> None:
        # Kept over real tokens, token-weighted; accumulated on device so training steps never sync with the host.
        # With K rollouts per input, tokens_per_layer has K rows per example.
        rollouts = tokens_per_layer.shape[0] // attention_mask.shape[0]
        fraction = tokens_per_layer.sum(0).float() / (attention_mask.sum() * rollouts)
        self._kept_fraction_sum = fraction if self._kept_fraction_sum is None else self._kept_fraction_sum + fraction
        self._kept_fraction_batches += 1

    def pop_token_stats(self) -> dict[str, float]:
        if self._kept_fraction_sum is None:
            return {}
        per_layer = (self._kept_fraction_sum / self._kept_fraction_batches).tolist()
        self._kept_fraction_sum, self._kept_fraction_batches = None, 0
        stats = {"kept_fraction": sum(per_layer) / len(per_layer)}
        stats.update({f"kept_fraction_layer_{i}": value for i, value in enumerate(per_layer)})
        return stats


def sequence_classification_loss(config, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """BERT's loss choice: regression for one label, cross-entropy for integer labels, else multi-label BCE.
    `reduction="none"` gives one loss per example (multi-output losses averaged over the outputs)."""
    num_labels = config.num_labels
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    if config.problem_type == "single_label_classification":
        return CrossEntropyLoss(reduction=reduction)(logits.view(-1, num_labels), labels.view(-1))
    if config.problem_type == "regression":
        loss_fct, logits, labels = MSELoss(reduction="none"), logits.view(-1, num_labels), labels.view(-1, num_labels)
    else:
        loss_fct = BCEWithLogitsLoss(reduction="none")
    per_example = loss_fct(logits, labels.to(logits.dtype)).mean(dim=-1)
    return per_example if reduction == "none" else per_example.mean()


def _with_pruning_loss(task_loss: torch.Tensor | None, outputs: TokenPruningModelOutput) -> torch.Tensor | None:
    if task_loss is None or outputs.pruning_loss is None:
        return task_loss
    return task_loss + outputs.pruning_loss


class TokenPruningForSequenceClassification(TokenPruningPreTrainedModel):
    """Classification/regression on the pooled [CLS] state, as `BertForSequenceClassification`."""

    model_class: type[TokenPruningModel]

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = self.model_class(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> TokenPruningSequenceClassifierOutput:
        outputs = self.bert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, return_dict=True, **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        return TokenPruningSequenceClassifierOutput(
            loss=_with_pruning_loss(loss, outputs),
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            tokens_per_layer=outputs.tokens_per_layer,
            pruning_loss=outputs.pruning_loss,
            action_log_prob=outputs.action_log_prob,
        )


class TokenPruningForQuestionAnswering(TokenPruningPreTrainedModel):
    """Extractive QA span logits over every input position, as `BertForQuestionAnswering`."""

    model_class: type[TokenPruningModel]

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = self.model_class(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        **kwargs,
    ) -> TokenPruningQuestionAnsweringOutput:
        outputs = self.bert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, return_dict=True, **kwargs,
        )
        start_logits, end_logits = self.qa_outputs(outputs.last_hidden_state).split(1, dim=-1)
        start_logits, end_logits = start_logits.squeeze(-1).contiguous(), end_logits.squeeze(-1).contiguous()
        loss = None
        if start_positions is not None and end_positions is not None:
            # Positions outside the input (truncated answers) are clamped to seq_len and ignored, as in BERT.
            ignored_index = start_logits.size(1)
            start_positions = start_positions.view(-1).clamp(0, ignored_index)
            end_positions = end_positions.view(-1).clamp(0, ignored_index)
            loss_fct = CrossEntropyLoss(ignore_index=ignored_index)
            loss = (loss_fct(start_logits, start_positions) + loss_fct(end_logits, end_positions)) / 2
        return TokenPruningQuestionAnsweringOutput(
            loss=_with_pruning_loss(loss, outputs),
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            tokens_per_layer=outputs.tokens_per_layer,
            pruning_loss=outputs.pruning_loss,
            action_log_prob=outputs.action_log_prob,
        )


class TokenPruningForTokenClassification(TokenPruningPreTrainedModel):
    """Per-token labels over every input position, as `BertForTokenClassification`."""

    model_class: type[TokenPruningModel]

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = self.model_class(config, add_pooling_layer=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs,
    ) -> TokenPruningTokenClassifierOutput:
        outputs = self.bert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, return_dict=True, **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1)) if labels is not None else None
        return TokenPruningTokenClassifierOutput(
            loss=_with_pruning_loss(loss, outputs),
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            tokens_per_layer=outputs.tokens_per_layer,
            pruning_loss=outputs.pruning_loss,
            action_log_prob=outputs.action_log_prob,
        )


__all__ = [
    "EncoderResult",
    "packed_layers_with_selector",
    "run_packed_layers",
    "TokenPruningForQuestionAnswering",
    "TokenPruningForSequenceClassification",
    "TokenPruningForTokenClassification",
    "TokenPruningModel",
    "TokenPruningModelOutput",
    "TokenPruningPreTrainedModel",
    "TokenPruningQuestionAnsweringOutput",
    "TokenPruningSequenceClassifierOutput",
    "TokenPruningTokenClassifierOutput",
]
