"""transformers_prune: BERT model types that make inference cheaper, as Hugging Face `transformers` models.

`import transformers_prune` registers every model type with the `transformers` Auto classes and adds the
kept-token logging callback to every `Trainer`.
"""

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
from .models.configuration_ltp_roberta import LTPRobertaConfig
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
from .models.modeling_ltp import (
    LTPForQuestionAnswering,
    LTPForSequenceClassification,
    LTPForTokenClassification,
    LTPModel,
)
from .models.modeling_ltp_roberta import (
    LTPRobertaForQuestionAnswering,
    LTPRobertaForSequenceClassification,
    LTPRobertaForTokenClassification,
    LTPRobertaModel,
)
from .models.modeling_transkimmer import (
    TranskimmerForQuestionAnswering,
    TranskimmerForSequenceClassification,
    TranskimmerForTokenClassification,
    TranskimmerModel,
)
from .models.token_engine import PackedBatch, drop_tokens, pack, unpack
from .training.callbacks import KeepRatioCallback, TrainingProgressCallback, install_keep_ratio_callback

__version__ = "0.1.0"

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

# Token-pruning methods on other backbones (docs/backbones.md): convert and the stock scripts serve them; the
# benchmark's HF baselines are BERT's, so `bench` does not.
BACKBONE_MODEL_TYPES = {
    LTPRobertaConfig.model_type: (
        LTPRobertaConfig,
        {
            AutoModel: LTPRobertaModel,
            AutoModelForSequenceClassification: LTPRobertaForSequenceClassification,
            AutoModelForQuestionAnswering: LTPRobertaForQuestionAnswering,
            AutoModelForTokenClassification: LTPRobertaForTokenClassification,
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


def _register() -> None:
    # `register_for_auto_class` makes HF copy the code into every folder these classes save to.
    for model_type, (config_class, models) in {**MODEL_TYPES, **BACKBONE_MODEL_TYPES, **COMPRESSED_MODEL_TYPES}.items():
        AutoConfig.register(model_type, config_class, exist_ok=True)
        config_class.register_for_auto_class()
        for auto_class, model_class in models.items():
            auto_class.register(config_class, model_class, exist_ok=True)
            model_class.register_for_auto_class(auto_class.__name__)


_register()
install_keep_ratio_callback()

__all__ = [
    "BACKBONE_MODEL_TYPES",
    "COMPRESSED_MODEL_TYPES",
    "MODEL_TYPES",
    "AdapLeRConfig",
    "AdapLeRForQuestionAnswering",
    "AdapLeRForSequenceClassification",
    "AdapLeRForTokenClassification",
    "AdapLeRModel",
    "AutoBertConfig",
    "AutoBertForQuestionAnswering",
    "AutoBertForSequenceClassification",
    "AutoBertForTokenClassification",
    "AutoBertModel",
    "CompressedBertConfig",
    "CompressedBertForQuestionAnswering",
    "CompressedBertForSequenceClassification",
    "CompressedBertForTokenClassification",
    "CompressedBertModel",
    "KeepRatioCallback",
    "TrainingProgressCallback",
    "LTPConfig",
    "LTPForQuestionAnswering",
    "LTPForSequenceClassification",
    "LTPForTokenClassification",
    "LTPModel",
    "LTPRobertaConfig",
    "LTPRobertaForQuestionAnswering",
    "LTPRobertaForSequenceClassification",
    "LTPRobertaForTokenClassification",
    "LTPRobertaModel",
    "PackedBatch",
    "TranskimmerConfig",
    "TranskimmerForQuestionAnswering",
    "TranskimmerForSequenceClassification",
    "TranskimmerForTokenClassification",
    "TranskimmerModel",
    "drop_tokens",
    "pack",
    "unpack",
]
