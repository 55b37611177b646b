"""transformers_prune: BERT model types that make inference cheaper, as Hugging Face `transformers` models.

`import transformers_prune` registers every model type with the `transformers` Auto classes and adds the
kept-token logging and training-progress callbacks to every `Trainer` (building one of our models does that too).
"""

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
from .registry import BACKBONE_MODEL_TYPES, COMPRESSED_MODEL_TYPES, MODEL_TYPES, register_model_types
from .models.training_callbacks import KeepRatioCallback, TrainingProgressCallback, install_training_callbacks

__version__ = "0.1.0"

register_model_types()
install_training_callbacks()

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
