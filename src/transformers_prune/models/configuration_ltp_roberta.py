"""Configuration of `ltp-roberta`: Learned Token Pruning on a RoBERTa backbone, the original paper's."""

from huggingface_hub.dataclasses import strict

from .configuration_ltp import LTPConfig


@strict
class LTPRobertaConfig(LTPConfig):
    """`LTPConfig` with `RobertaConfig`'s defaults (a RoBERTa checkpoint's `config.json` sets each of them anyway).

    Example:

    ```python
    >>> from transformers import AutoConfig
    >>> import transformers_prune
    >>> config = AutoConfig.for_model("ltp-roberta", final_token_threshold=0.01)
    ```
    """

    model_type = "ltp-roberta"
    source_model_type = "roberta"  # what `transformers-prune convert` starts from

    vocab_size: int = 50265
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 2


__all__ = ["LTPRobertaConfig"]
