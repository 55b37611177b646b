"""What every token-pruning model type shares: the encoder contract, outputs, the base model's engine dispatch.

A method subclasses `TokenPruningEncoder`, which holds BERT's layers, adding its parameters and the selector
methods of `token_selection.TokenSelector` (where it decides, its keep values, its loss); the generic loops run it
in both forms. It then names its config and encoder in one subclass of each model class here. Everything else
(embeddings, input checks, pooling, heads and their losses, kept-token statistics for the training callback) lives
here once.

Conventions every type follows:
- `loss` is the task loss plus the method's `pruning_loss` in training; at evaluation it is the task loss alone,
  so `Trainer`'s `eval_loss` compares across types and with plain BERT.
- `attn_implementation`: "sdpa" (the default) runs fused SDPA kernels wherever the method needs neither attention
  probabilities nor differentiable key weights; "eager" forms attention explicitly everywhere; flash and flex
  attention are refused at load (the methods weight attention keys inside the softmax, which those kernels cannot
  express; on CUDA the packed engine uses flash-attn's varlen kernel by itself when it is installed).
- Gradient checkpointing (`activation_checkpointing_enable()`, or the Trainer's `gradient_checkpointing=True`)
  recomputes each layer in backward on the training path.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import initialization as init
from transformers.modeling_outputs import (
    ModelOutput,
    BaseModelOutputWithPooling,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.models.bert.modeling_bert import BertEmbeddings, BertLayer, BertPooler, BertPreTrainedModel
from transformers.utils import can_return_tuple

from .checkpoint_files import HubCheckpointMixin
from .token_engine import PackedBatch, checked_attention_mask, configured_attention_backend, pack, unpack
from .token_selection import EncoderResult, SelectionTrace, TokenSelector, run_masked_layers, run_packed_layers
from .training_callbacks import install_training_callbacks


def masked_attention_kernel(config) -> str:
    """The masked form's attention: "eager" when the model was loaded with `attn_implementation="eager"`."""
    return "eager" if getattr(config, "_attn_implementation", None) == "eager" else "sdpa"


# Config fields that size BERT's modules: changed on a built model, the modules would silently disagree with them.
BUILT_SHAPE_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "max_position_embeddings", "vocab_size")


class TokenPruningEncoder(TokenSelector):
    """`layer.N` are the backbone's layers (checkpoint names unchanged); a method's parameters sit beside them and
    its selector methods (see `TokenSelector`) say which tokens go on."""

    layer_class: type[nn.Module] = BertLayer  # any layer with BERT's submodules (see docs/backbones.md)

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList(self.layer_class(config, layer_idx=i) for i in range(config.num_hidden_layers))
        self.gradient_checkpointing = False  # set by HF's activation_checkpointing_enable()
        keys = (*BUILT_SHAPE_KEYS, *getattr(config, "build_time_keys", ()))
        self.built_with = {key: copy.deepcopy(getattr(config, key)) for key in keys}

    def check_built_settings(self) -> None:
        """Refuse to run when a field that shaped the modules has changed since (the modules would silently
        disagree with the config, e.g. TR-BERT's selectors with `selection_layers`)."""
        for key, value in self.built_with.items():
            if getattr(self.config, key) != value:
                raise ValueError(
                    f"{key}={getattr(self.config, key)!r} differs from {value!r}, the value this model was built with; "
                    f"set it before the model is built, e.g. from_pretrained(..., {key}=...) or `transformers-prune convert --set`"
                )

    def set_training_progress(self, fraction: float) -> None:
        """How far training is, 0 to 1, for methods with a training schedule; `TrainingProgressCallback`, which
        building the model installs in every `Trainer`, calls it before every step."""

    def forward_masked(
        self,
        hidden: torch.Tensor,
        padding_mask: torch.Tensor,
        prune: bool,
        output_hidden_states: bool,
        output_attentions: bool,
        method_inputs: dict[str, torch.Tensor],
    ) -> EncoderResult:
        """The padded, differentiable form (training, `inference_engine="masked"`); `prune=False` runs every token."""
        self.check_built_settings()
        trace = SelectionTrace(method_inputs, padding_mask.sum(), padding_mask.numel())
        return run_masked_layers(
            self.layer, hidden, padding_mask, self if prune else None, trace, masked_attention_kernel(self.config),
            output_hidden_states, output_attentions, checkpointing_owner=self,
        )

    def forward_packed(
        self, batch: PackedBatch, attention_backend: str, prune: bool, output_hidden_states: bool,
        method_inputs: dict[str, torch.Tensor],
    ) -> tuple[PackedBatch, list[torch.Tensor], tuple[torch.Tensor, ...] | None]:
        """Hard decisions on the packed engine (see `run_packed_layers` for what it returns)."""
        self.check_built_settings()
        trace = SelectionTrace(method_inputs, batch.num_tokens)
        return run_packed_layers(self.layer, batch, attention_backend, self if prune else None, trace, output_hidden_states)


@dataclass
class TokenPruningModelOutput(BaseModelOutputWithPooling):
    """
    Args:
        last_hidden_state: `[B, S, H]`; a dropped token holds its state from the last layer it was kept in. None
            from the base model inside a sequence classifier on the packed engine, which reads [CLS] only.
        pooler_output: `[B, H]` pooled [CLS] state, when the model has a pooler.
        hidden_states: per-layer `[B, S, H]` states when `output_hidden_states=True`.
        attentions: per-layer attention probabilities when `output_attentions=True` (masked engine only).
        tokens_per_layer: `[B, L]` int64, real (non-padding) tokens of each example entering each layer.
        pruning_loss: the method's auxiliary loss, coefficient applied, as added to the task loss (training only).
    """

    tokens_per_layer: torch.LongTensor | None = None
    pruning_loss: torch.FloatTensor | None = None


@dataclass
class TokenPruningSequenceClassifierOutput(SequenceClassifierOutput):
    tokens_per_layer: torch.LongTensor | None = None
    pruning_loss: torch.FloatTensor | None = None


@dataclass
class TokenPruningQuestionAnsweringOutput(QuestionAnsweringModelOutput):
    tokens_per_layer: torch.LongTensor | None = None
    pruning_loss: torch.FloatTensor | None = None


@dataclass
class TokenPruningTokenClassifierOutput(TokenClassifierOutput):
    tokens_per_layer: torch.LongTensor | None = None
    pruning_loss: torch.FloatTensor | None = None


class LogitScaledLinear(nn.Linear):
    """A predictor's last Linear, its outputs multiplied by `scale` and its weights starting `scale` times smaller
    (`TokenPruningPreTrainedModel._init_weights`): the same outputs at the start, which the one optimizer (Adam moves
    every weight about lr per step) then moves `scale` times faster in effect. Transkimmer's `skim_lr_scale` and
    AdapLeR's `cp_lr_scale`."""

    def __init__(self, in_features: int, out_features: int, scale: float):
        super().__init__(in_features, out_features)
        self.scale = float(scale)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.scale * super().forward(input)


class TokenPruningPreTrainedModel(HubCheckpointMixin, BertPreTrainedModel):
    """BERT's weight layout and init, with the `Trainer` contract our auxiliary losses need."""

    # The loss is a per-batch mean plus an auxiliary term; Trainer must divide it by the accumulation steps.
    accepts_loss_kwargs = False
    supports_gradient_checkpointing = True
    # Attention runs through our own kernels (see the module docstring): sdpa and eager only.
    _supports_flash_attn = False
    _supports_flex_attn = False
    _supports_attention_backend = False

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, LogitScaledLinear):
            # BERT's init divided by the scale, so the outputs start as at scale 1; init.* keep loaded weights.
            init.copy_(module.weight, module.weight / module.scale)
            init.copy_(module.bias, module.bias / module.scale)

    def post_init(self):
        super().post_init()
        # Before any script builds its Trainer: the schedule and the kept-token logs must not depend on whether
        # `transformers_prune` was imported (a stock script loading this checkpoint with trust_remote_code does not).
        install_training_callbacks()

    # True when `from_pretrained` found no weights for this model's task head (e.g. a pre-trained BERT): the head
    # starts from random values and the model has not learned the task.
    head_newly_initialised = False

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """As HF's, and records `head_newly_initialised`: a head parameter was missing from the checkpoint or
        re-initialised for a new shape (`ignore_mismatched_sizes`)."""
        wants_loading_info = kwargs.pop("output_loading_info", False)
        model, loading = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        new_keys = [*loading["missing_keys"], *(key for key, *_ in loading["mismatched_keys"])]
        prefix = f"{model.base_model_prefix}."
        model.head_newly_initialised = model.base_model is not model and any(not key.startswith(prefix) for key in new_keys)
        return (model, loading) if wants_loading_info else model

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Refuses (ValueError) a model whose shaping config fields changed after it was built: the saved config
        would not match the saved tensors, and the folder would not load."""
        self.base_model.encoder.check_built_settings()
        super().save_pretrained(save_directory, *args, **kwargs)

    def untrained_start_problem(self) -> str | None:
        """Why this method cannot learn when training starts from a newly initialised task head (a pre-trained
        checkpoint), or None when it can. Methods whose decisions need a model that already knows its task say so."""
        return None

    def check_training_start(self) -> None:
        """Refuse to train a method that cannot learn from a pre-trained checkpoint's newly initialised head: such
        a run finishes without error at chance accuracy."""
        problem = self.untrained_start_problem() if self.head_newly_initialised else None
        if problem is not None:
            raise ValueError(
                f"{self.config.model_type}: this {type(self).__name__} was loaded from a checkpoint without a trained "
                f"task head, and {problem}. Fine-tune the BERT checkpoint on the task first (the same stock script, "
                f"plain BERT), then convert that output (`transformers-prune convert --to {self.config.model_type} "
                "FINE_TUNED OUT`) and train it: see the stock-script recipes in docs/stock_scripts.md"
            )

    def pop_token_stats(self) -> dict[str, float]:
        """Mean kept fraction per layer over the training batches since the last call (see `KeepRatioCallback`)."""
        return self.base_model.pop_token_stats()

    def set_training_progress(self, fraction: float) -> None:
        """See `TokenPruningEncoder.set_training_progress`."""
        self.base_model.encoder.set_training_progress(fraction)


class TokenPruningModel(TokenPruningPreTrainedModel):
    """BERT embeddings and pooler around a method's encoder; dispatches to the masked or packed forward.

    `every_position=False` (what a sequence classifier builds) skips the restore buffer and the full-length output
    on the packed engine: the pooler reads each example's [CLS] row directly.
    """

    encoder_class: type[TokenPruningEncoder]
    embeddings_class: type[nn.Module] = BertEmbeddings
    output_class: type[TokenPruningModelOutput] = TokenPruningModelOutput
    # Extra inputs a method's training forward reads (e.g. AdapLeR's `saliency`), passed from the heads' kwargs.
    method_input_names: tuple[str, ...] = ()

    def __init__(self, config, add_pooling_layer: bool = True, every_position: bool = True):
        super().__init__(config)
        self.embeddings = self.embeddings_class(config)
        self.encoder = self.encoder_class(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.every_position = every_position
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
        attention_mask = checked_attention_mask(
            input_ids, inputs_embeds, attention_mask, self.config.max_position_embeddings, self.config.vocab_size
        )
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions

        hidden = self.embeddings(
            input_ids=input_ids, position_ids=position_ids, token_type_ids=token_type_ids, inputs_embeds=inputs_embeds
        )
        method_inputs = {name: kwargs[name] for name in self.method_input_names if kwargs.get(name) is not None}
        result = self.encode(hidden, attention_mask, output_hidden_states, output_attentions, method_inputs)
        if self.training:
            self._record_kept_fraction(result.tokens_per_layer, attention_mask)
        return self.model_output(result)

    def model_output(self, result: EncoderResult) -> TokenPruningModelOutput:
        """The base model's output record from the encoder's result, the pooler applied to each example's [CLS]
        state (also what the exported graph's heads read, `deploy.traceable`)."""
        pooled = self.pooler(result.first_token_states[:, None]) if self.pooler is not None else None
        return self.output_class(
            last_hidden_state=result.last_hidden_state,
            pooler_output=pooled,
            hidden_states=result.hidden_states,
            attentions=result.attentions,
            tokens_per_layer=result.tokens_per_layer,
            pruning_loss=result.pruning_loss,
            **result.method_outputs,
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
        engine = self.config.inference_engine
        if self.training or engine == "masked":
            prune = self.training or self.config.prune_at_inference
            return self.encoder.forward_masked(
                hidden, attention_mask.bool(), prune, output_hidden_states, output_attentions, method_inputs
            )
        if engine != "packed":
            raise ValueError(f"inference_engine={engine!r} is invalid; allowed: 'packed' or 'masked'")
        if output_attentions:
            raise ValueError("output_attentions needs inference_engine='masked'; the packed engine never forms attention maps")
        full_length = self.every_position or output_hidden_states
        batch = pack(hidden, attention_mask, keep_restore_buffer=full_length)
        batch, counts, hidden_states = self.encoder.forward_packed(
            batch, configured_attention_backend(self.config, hidden), self.config.prune_at_inference,
            output_hidden_states, method_inputs,
        )
        return packed_result(batch, counts, hidden_states, full_length)

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


def packed_result(
    batch: PackedBatch,
    counts: list[torch.Tensor],
    hidden_states: tuple[torch.Tensor, ...] | None,
    full_length: bool,
    method_outputs: dict[str, torch.Tensor] | None = None,
) -> EncoderResult:
    """The `EncoderResult` of a packed run: [CLS] rows straight from the packed batch (compaction keeps each
    example's first token first), the full-length states only when `full_length`."""
    return EncoderResult(
        last_hidden_state=unpack(batch) if full_length else None,
        first_token_states=batch.hidden[batch.first_token_rows()],
        tokens_per_layer=torch.stack(counts, dim=1),
        hidden_states=hidden_states,
        method_outputs=method_outputs or {},
    )


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


def span_loss(
    start_logits: torch.Tensor, end_logits: torch.Tensor, start_positions: torch.Tensor, end_positions: torch.Tensor,
    reduction: str = "mean",
) -> torch.Tensor:
    """BERT's extractive-QA loss, the mean of the start and end cross-entropies; positions outside the input
    (truncated answers) are clamped to `seq_len` and ignored. `reduction="none"` gives one loss per example."""
    ignored_index = start_logits.size(1)
    start_positions = start_positions.view(-1).clamp(0, ignored_index)
    end_positions = end_positions.view(-1).clamp(0, ignored_index)
    loss_fct = CrossEntropyLoss(ignore_index=ignored_index, reduction=reduction)
    return (loss_fct(start_logits, start_positions) + loss_fct(end_logits, end_positions)) / 2


def token_classification_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy over the labelled tokens (labels -100 are ignored): their mean over the batch, as
    `BertForTokenClassification`, or with `reduction="none"` each example's mean over its own labelled tokens."""
    if reduction == "mean":
        return CrossEntropyLoss()(logits.view(-1, logits.shape[-1]), labels.view(-1))
    token_losses = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")  # 0 where labels are -100
    labelled = (labels != -100).to(token_losses.dtype)
    return (token_losses * labelled).sum(dim=1) / labelled.sum(dim=1).clamp_min(1)


def with_pruning_loss(task_loss: torch.Tensor | None, outputs: TokenPruningModelOutput) -> torch.Tensor | None:
    """The head's loss: the task loss plus the method's auxiliary loss when both are there (training)."""
    if task_loss is None or outputs.pruning_loss is None:
        return task_loss
    return task_loss + outputs.pruning_loss


class TokenPruningHead(TokenPruningPreTrainedModel):
    """A task head over `model_class`, built under `base_model_prefix` (`bert`, the name BERT checkpoints use). Its
    output class declares which of the base model's outputs it carries: `carried_outputs` copies those."""

    model_class: type[TokenPruningModel]
    output_class: type[ModelOutput]

    def head_logits(self, outputs: TokenPruningModelOutput) -> tuple[torch.Tensor, ...]:
        """The head's outputs (`logits`, or `start_logits` and `end_logits`) from the base model's: the one place a
        head's computation lives, for the head's own forward and the exported graph (`deploy.traceable`)."""
        raise NotImplementedError

    def carried_outputs(self, outputs: TokenPruningModelOutput) -> dict:
        """The base model's outputs that this head's output class also declares (hidden states, tokens per layer,
        pruning loss, a method's own fields), by name."""
        names = {field.name for field in dataclasses.fields(self.output_class)} & {
            field.name for field in dataclasses.fields(outputs)
        }
        return {name: getattr(outputs, name) for name in names - {"last_hidden_state", "pooler_output"}}

    def build_base_model(self, config, **options) -> None:
        setattr(self, self.base_model_prefix, self.model_class(config, **options))

    def base_outputs(self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, kwargs) -> TokenPruningModelOutput:
        if self.training:
            self.check_training_start()
        return self.base_model(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, return_dict=True, **kwargs,
        )


class TokenPruningForSequenceClassification(TokenPruningHead):
    """Classification/regression on the pooled [CLS] state, as `BertForSequenceClassification`."""

    output_class = TokenPruningSequenceClassifierOutput

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.build_head(config)
        self.post_init()

    def build_head(self, config) -> None:
        """BERT's: the pooled [CLS] state (so the packed engine keeps no full-length output), dropout, a linear layer."""
        self.build_base_model(config, every_position=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

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
        outputs = self.base_outputs(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, kwargs)
        (logits,) = self.head_logits(outputs)
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        return self.output_class(loss=with_pruning_loss(loss, outputs), logits=logits, **self.carried_outputs(outputs))

    def head_logits(self, outputs: TokenPruningModelOutput) -> tuple[torch.Tensor]:
        return (self.classifier(self.dropout(outputs.pooler_output)),)


class TokenPruningForQuestionAnswering(TokenPruningHead):
    """Extractive QA span logits over every input position, as `BertForQuestionAnswering`."""

    output_class = TokenPruningQuestionAnsweringOutput

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.build_base_model(config, add_pooling_layer=False)
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
        outputs = self.base_outputs(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, kwargs)
        start_logits, end_logits = self.head_logits(outputs)
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions, end_positions)
        return self.output_class(
            loss=with_pruning_loss(loss, outputs), start_logits=start_logits, end_logits=end_logits,
            **self.carried_outputs(outputs),
        )

    def head_logits(self, outputs: TokenPruningModelOutput) -> tuple[torch.Tensor, torch.Tensor]:
        start_logits, end_logits = self.qa_outputs(outputs.last_hidden_state).split(1, dim=-1)
        return start_logits.squeeze(-1).contiguous(), end_logits.squeeze(-1).contiguous()


class TokenPruningForTokenClassification(TokenPruningHead):
    """Per-token labels over every input position, as `BertForTokenClassification`."""

    output_class = TokenPruningTokenClassifierOutput

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.build_base_model(config, add_pooling_layer=False)
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
        outputs = self.base_outputs(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, kwargs)
        (logits,) = self.head_logits(outputs)
        loss = token_classification_loss(logits, labels) if labels is not None else None
        return self.output_class(loss=with_pruning_loss(loss, outputs), logits=logits, **self.carried_outputs(outputs))

    def head_logits(self, outputs: TokenPruningModelOutput) -> tuple[torch.Tensor]:
        return (self.classifier(self.dropout(outputs.last_hidden_state)),)


__all__ = [
    "EncoderResult",
    "TokenPruningEncoder",
    "TokenPruningHead",
    "TokenPruningForQuestionAnswering",
    "TokenPruningForSequenceClassification",
    "TokenPruningForTokenClassification",
    "TokenPruningModel",
    "TokenPruningModelOutput",
    "TokenPruningPreTrainedModel",
    "TokenPruningQuestionAnsweringOutput",
    "TokenPruningSequenceClassifierOutput",
    "TokenPruningTokenClassifierOutput",
    "masked_attention_kernel",
    "packed_result",
    "sequence_classification_loss",
    "span_loss",
    "token_classification_loss",
    "with_pruning_loss",
]
