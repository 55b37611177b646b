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

from .configuration_ltp_roberta import LTPRobertaConfig
from .modeling_ltp import LTPEncoder, LTPPreTrainedModel
from .modeling_token_pruning import (
    TokenPruningForQuestionAnswering,
    TokenPruningForSequenceClassification,
    TokenPruningForTokenClassification,
    TokenPruningModel,
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


class LTPRobertaForSequenceClassification(LTPRobertaPreTrainedModel, TokenPruningForSequenceClassification):
    """RoBERTa's head: dense + tanh + projection on the `<s>` token's final state (read from the full-length
    states, so this head keeps the restore buffer)."""

    model_class = LTPRobertaModel

    def build_head(self, config: LTPRobertaConfig) -> None:
        self.build_base_model(config, add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)

    def head_logits(self, outputs) -> tuple[torch.Tensor]:
        return (self.classifier(outputs.last_hidden_state),)


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
