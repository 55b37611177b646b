"""`ltp-roberta`: Learned Token Pruning (Kim et al., KDD 2022) on RoBERTa, the backbone of the original paper.

The method is `ltp`'s, unchanged; this file only swaps the backbone (see docs/backbones.md): RoBERTa's
embeddings (positions counted from `pad_token_id + 1`), its layers (BERT's submodules under RoBERTa's class),
the `roberta.` checkpoint prefix and RoBERTa's classification head, which reads the `<s>` token's final state
(no pooler). Checkpoints of `RobertaModel` / `RobertaFor*` load with their weights unchanged.
"""

from __future__ import annotations

import torch
from transformers import initialization as init
from transformers.models.roberta.modeling_roberta import RobertaClassificationHead, RobertaEmbeddings, RobertaLayer
from transformers.utils import can_return_tuple

from .configuration_ltp_roberta import LTPRobertaConfig
from .modeling_ltp import LTPEncoder, LTPPreTrainedModel
from .modeling_token_pruning import (
    TokenPruningForQuestionAnswering,
    TokenPruningForTokenClassification,
    TokenPruningHead,
    TokenPruningModel,
    TokenPruningSequenceClassifierOutput,
    sequence_classification_loss,
    with_pruning_loss,
)


class LTPRobertaEncoder(LTPEncoder):
    layer_class = RobertaLayer


class LTPRobertaPreTrainedModel(LTPPreTrainedModel):
    config_class = LTPRobertaConfig
    config: LTPRobertaConfig
    base_model_prefix = "roberta"

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, RobertaEmbeddings):  # non-persistent buffers come back uninitialised from the meta device
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            init.zeros_(module.token_type_ids)


class LTPRobertaModel(LTPRobertaPreTrainedModel, TokenPruningModel):
    encoder_class = LTPRobertaEncoder
    embeddings_class = RobertaEmbeddings


class LTPRobertaForSequenceClassification(LTPRobertaPreTrainedModel, TokenPruningHead):
    """RoBERTa's head: dense + tanh + projection on the `<s>` token's final state (read from the full-length
    states, so this head keeps the restore buffer)."""

    model_class = LTPRobertaModel
    output_class = TokenPruningSequenceClassifierOutput

    def __init__(self, config: LTPRobertaConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.build_base_model(config, add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)
        self.post_init()

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, **kwargs):
        outputs = self.base_outputs(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, kwargs)
        logits = self.classifier(outputs.last_hidden_state)
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        return self.output_class(loss=with_pruning_loss(loss, outputs), logits=logits, **self.carried_outputs(outputs))


class LTPRobertaForQuestionAnswering(LTPRobertaPreTrainedModel, TokenPruningForQuestionAnswering):
    model_class = LTPRobertaModel


class LTPRobertaForTokenClassification(LTPRobertaPreTrainedModel, TokenPruningForTokenClassification):
    model_class = LTPRobertaModel


__all__ = [
    "LTPRobertaForQuestionAnswering",
    "LTPRobertaForSequenceClassification",
    "LTPRobertaForTokenClassification",
    "LTPRobertaModel",
    "LTPRobertaPreTrainedModel",
]
