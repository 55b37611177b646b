"""Configuration of `transkimmer-bert` (Transkimmer, Guan et al., ACL 2022)."""

from huggingface_hub.dataclasses import strict

from .config_checks import finite, require
from .configuration_token_pruning import TokenPruningConfig


@strict
class TranskimmerConfig(TokenPruningConfig):
    """BERT plus a skim predictor before every layer.

    Args:
        skim_coefficient: weight of the skim loss (mean kept fraction over layers) added to the task loss.
            The official scripts use 0.5 (GLUE/IMDB), 0.3 (SQuAD), 0.2 (20News/Yelp); its heads default to 1.
        skim_gumbel_tau: temperature of the straight-through Gumbel-softmax used in training (1 in the paper).
        skim_predictor_hidden_size: width of the predictor MLP; None means `hidden_size`, as in the paper.
        skim_init_bias: the keep logit's bias starts at +value and the skim logit's at -value, so a model
            loaded from plain BERT keeps every token (the paper's "unbalanced initialization").

    Example:

    ```python
    >>> from transformers import AutoConfig
    >>> import transformers_prune
    >>> config = AutoConfig.for_model("transkimmer-bert", skim_coefficient=0.5)
    ```
    """

    model_type = "transkimmer-bert"

    skim_coefficient: float | int = 1.0
    skim_gumbel_tau: float | int = 1.0
    skim_predictor_hidden_size: int | None = None
    skim_init_bias: float | int = 5.0

    def validate_transkimmer(self):
        require(
            finite(self.skim_coefficient) and self.skim_coefficient >= 0,
            "skim_coefficient", self.skim_coefficient, "a finite number >= 0",
        )
        require(
            finite(self.skim_gumbel_tau) and self.skim_gumbel_tau > 0, "skim_gumbel_tau", self.skim_gumbel_tau, "a finite number > 0"
        )
        require(
            self.skim_predictor_hidden_size is None or self.skim_predictor_hidden_size > 0,
            "skim_predictor_hidden_size", self.skim_predictor_hidden_size, "None or an integer > 0",
        )
        require(finite(self.skim_init_bias), "skim_init_bias", self.skim_init_bias, "a finite number")


__all__ = ["TranskimmerConfig"]
