"""HF's BERT with inference on the packed token engine and nothing dropped: the method-free packed encoder.

`PackedBertModel` is `BertModel` whose evaluation forward runs the same layers on the real tokens only (linear
layers on `[N, H]`, attention per example), so a batch costs what its tokens cost whatever its padding, with the
same outputs as BERT's own forward on real tokens. Training, `output_attentions=True` and BERT as a decoder
(cross-attention, cache) take BERT's own forward. It loads any BERT checkpoint as it is, and reads two optional
config fields: `inference_engine` ("packed", the default, or "hf" for BERT's own forward) and
`packed_attention_backend` (force one of `token_engine.ATTENTION_BACKENDS`).

It is the benchmark's and the demo's "dense-packed" baseline and the base of `compressed-bert`.
"""

from __future__ import annotations

import torch
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions
from transformers.models.bert.modeling_bert import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)
from transformers.utils import can_return_tuple

from .token_engine import checked_attention_mask, configured_attention_backend, pack, unpack
from .token_selection import run_packed_layers

BERT_ONLY_FEATURES = ("encoder_hidden_states", "encoder_attention_mask", "past_key_values")


class PackedBertModel(BertModel):
    """`BertModel` with inference on the packed engine (see the module docstring)."""

    def wants_attentions(self, kwargs: dict) -> bool:
        """Whether a call with these keyword arguments asks for attention maps (the argument, else the config)."""
        output_attentions = kwargs.get("output_attentions")
        return self.config.output_attentions if output_attentions is None else output_attentions

    def runs_packed(self, kwargs: dict) -> bool:
        """Whether a call with these keyword arguments runs on the packed engine."""
        return (
            getattr(self.config, "inference_engine", "packed") == "packed"
            and not self.training
            and not self.wants_attentions(kwargs)
            and not self.config.is_decoder
            and all(kwargs.get(name) is None for name in BERT_ONLY_FEATURES)
        )

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        if self.wants_attentions(kwargs) and self.config._attn_implementation != "eager":
            raise ValueError(
                f"output_attentions needs attention probabilities, which attn_implementation="
                f"{self.config._attn_implementation!r} does not form: load the model with attn_implementation='eager'"
            )
        if not self.runs_packed(kwargs):
            return super().forward(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, **kwargs)
        attention_mask = checked_attention_mask(
            input_ids, inputs_embeds, attention_mask, self.config.max_position_embeddings, self.config.vocab_size
        )
        output_hidden_states = kwargs.get("output_hidden_states")
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        hidden = self.embeddings(
            input_ids=input_ids, position_ids=position_ids, token_type_ids=token_type_ids, inputs_embeds=inputs_embeds
        )
        batch, _, hidden_states = run_packed_layers(
            self.encoder.layer, pack(hidden, attention_mask), configured_attention_backend(self.config, hidden),
            output_hidden_states=output_hidden_states,
        )
        # Nothing is dropped, so the live rows are every real position: unpack needs no restore buffer.
        sequence_output = unpack(batch)
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=self.pooler(sequence_output) if self.pooler is not None else None,
            hidden_states=hidden_states,
        )


class PackedBertHeadMixin:
    """A BERT task head whose `bert` is `base_model_class` (HF's head builds a plain `BertModel` first; built
    under the meta device when loading, so the discarded one costs nothing then)."""

    base_model_class: type[BertModel] = PackedBertModel

    def __init__(self, config):
        super().__init__(config)
        self.bert = self.base_model_class(config, add_pooling_layer=self.bert.pooler is not None)
        self.post_init()


class PackedBertForSequenceClassification(PackedBertHeadMixin, BertForSequenceClassification):
    pass


class PackedBertForQuestionAnswering(PackedBertHeadMixin, BertForQuestionAnswering):
    pass


class PackedBertForTokenClassification(PackedBertHeadMixin, BertForTokenClassification):
    pass


__all__ = [
    "PackedBertForQuestionAnswering",
    "PackedBertForSequenceClassification",
    "PackedBertForTokenClassification",
    "PackedBertHeadMixin",
    "PackedBertModel",
]
