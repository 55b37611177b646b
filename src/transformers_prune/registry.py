"""Our model types and the Auto classes they register with: the one table `import transformers_prune`, `convert`,
`compress` and the benchmark read."""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .models import (
    modeling_adapler,
    modeling_autobert,
    modeling_compressed_bert,
    modeling_ltp,
    modeling_ltp_roberta,
    modeling_transkimmer,
)
from .models.configuration_adapler import AdapLeRConfig
from .models.configuration_autobert import AutoBertConfig
from .models.configuration_compressed_bert import CompressedBertConfig
from .models.configuration_ltp import LTPConfig
from .models.configuration_ltp_roberta import LTPRobertaConfig
from .models.configuration_transkimmer import TranskimmerConfig

# Auto class -> the suffix of our class for it (`TranskimmerModel`, `TranskimmerForSequenceClassification`, ...).
HEAD_SUFFIXES = {
    AutoModel: "Model",
    AutoModelForSequenceClassification: "ForSequenceClassification",
    AutoModelForQuestionAnswering: "ForQuestionAnswering",
    AutoModelForTokenClassification: "ForTokenClassification",
}


def _model_type(config_class, modeling_module, prefix: str) -> dict:
    """`{model_type: (config class, {Auto class: model class})}` for the classes `<prefix><suffix>` of a module."""
    models = {auto_class: getattr(modeling_module, prefix + suffix) for auto_class, suffix in HEAD_SUFFIXES.items()}
    return {config_class.model_type: (config_class, models)}


# Token-pruning model types: model_type -> (config, {Auto class: model class}); also the source of the auto_map
# written by `convert`.
MODEL_TYPES = {
    **_model_type(TranskimmerConfig, modeling_transkimmer, "Transkimmer"),
    **_model_type(LTPConfig, modeling_ltp, "LTP"),
    **_model_type(AdapLeRConfig, modeling_adapler, "AdapLeR"),
    **_model_type(AutoBertConfig, modeling_autobert, "AutoBert"),
}

# Token-pruning methods on other backbones (docs/backbones.md): convert and the stock scripts serve them; the
# benchmark's HF baselines are BERT's, so `bench` does not.
BACKBONE_MODEL_TYPES = _model_type(LTPRobertaConfig, modeling_ltp_roberta, "LTPRoberta")

# Weight-compressed model types: HF's BERT forward with compressed modules, written by `transformers-prune compress`.
COMPRESSED_MODEL_TYPES = _model_type(CompressedBertConfig, modeling_compressed_bert, "CompressedBert")


def register_model_types() -> None:
    """Register every type with the Auto classes. `register_for_auto_class` makes HF copy the code into every
    folder these classes save to."""
    for model_type, (config_class, models) in {**MODEL_TYPES, **BACKBONE_MODEL_TYPES, **COMPRESSED_MODEL_TYPES}.items():
        AutoConfig.register(model_type, config_class, exist_ok=True)
        config_class.register_for_auto_class()
        for auto_class, model_class in models.items():
            auto_class.register(config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class(auto_class.__name__)


__all__ = ["BACKBONE_MODEL_TYPES", "COMPRESSED_MODEL_TYPES", "MODEL_TYPES", "register_model_types"]
