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

from .models.configuration_adapler import AdapLeRConfig
from .models.configuration_autobert import AutoBertConfig
from .models.configuration_compressed_bert import CompressedBertConfig
from .models.configuration_ltp import LTPConfig
from .models.configuration_transkimmer import TranskimmerConfig
from .models.modeling_adapler import (
    AdapLeRForQuestionAnswering,
    AdapLeRForSequenceClassification,
    AdapLeRForTokenClassification,
    AdapLeRModel,
)
from .models.modeling_autobert import (
    AutoBertForQuestionAnswering,
    AutoBertForSequenceClassification,
    AutoBertForTokenClassification,
    AutoBertModel,
)
from .models.modeling_compressed_bert import (
    CompressedBertForQuestionAnswering,
    CompressedBertForSequenceClassification,
    CompressedBertForTokenClassification,
    CompressedBertModel,
)
from .models.modeling_ltp import LTPForQuestionAnswering, LTPForSequenceClassification, LTPForTokenClassification, LTPModel
from .models.modeling_transkimmer import (
    TranskimmerForQuestionAnswering,
    TranskimmerForSequenceClassification,
    TranskimmerForTokenClassification,
    TranskimmerModel,
)

# Token-pruning model types: model_type -> (config, {Auto class: model class}); also the source of the auto_map
# written by `convert`.
MODEL_TYPES = {
    TranskimmerConfig.model_type: (
        TranskimmerConfig,
        {
            AutoModel: TranskimmerModel,
            AutoModelForSequenceClassification: TranskimmerForSequenceClassification,
            AutoModelForQuestionAnswering: TranskimmerForQuestionAnswering,
            AutoModelForTokenClassification: TranskimmerForTokenClassification,
        },
    ),
    LTPConfig.model_type: (
        LTPConfig,
        {
            AutoModel: LTPModel,
            AutoModelForSequenceClassification: LTPForSequenceClassification,
            AutoModelForQuestionAnswering: LTPForQuestionAnswering,
            AutoModelForTokenClassification: LTPForTokenClassification,
        },
    ),
    AdapLeRConfig.model_type: (
        AdapLeRConfig,
        {
            AutoModel: AdapLeRModel,
            AutoModelForSequenceClassification: AdapLeRForSequenceClassification,
            AutoModelForQuestionAnswering: AdapLeRForQuestionAnswering,
            AutoModelForTokenClassification: AdapLeRForTokenClassification,
        },
    ),
    AutoBertConfig.model_type: (
        AutoBertConfig,
        {
            AutoModel: AutoBertModel,
            AutoModelForSequenceClassification: AutoBertForSequenceClassification,
            AutoModelForQuestionAnswering: AutoBertForQuestionAnswering,
            AutoModelForTokenClassification: AutoBertForTokenClassification,
        },
    ),
}

# Weight-compressed model types: HF's BERT forward with compressed modules, written by `transformers-prune compress`.
COMPRESSED_MODEL_TYPES = {
    CompressedBertConfig.model_type: (
        CompressedBertConfig,
        {
            AutoModel: CompressedBertModel,
            AutoModelForSequenceClassification: CompressedBertForSequenceClassification,
            AutoModelForQuestionAnswering: CompressedBertForQuestionAnswering,
            AutoModelForTokenClassification: CompressedBertForTokenClassification,
        },
    ),
}


def register_model_types() -> None:
    """Register every type with the Auto classes. `register_for_auto_class` makes HF copy the code into every
    folder these classes save to."""
    for model_type, (config_class, models) in {**MODEL_TYPES, **COMPRESSED_MODEL_TYPES}.items():
        AutoConfig.register(model_type, config_class, exist_ok=True)
        config_class.register_for_auto_class()
        for auto_class, model_class in models.items():
            auto_class.register(config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class(auto_class.__name__)


__all__ = ["COMPRESSED_MODEL_TYPES", "MODEL_TYPES", "register_model_types"]
