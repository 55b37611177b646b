"""Configuration of `transkimmer-bert` (Transkimmer, Guan et al., ACL 2022)."""

from huggingface_hub.dataclasses import strict

from .config_checks import finite, require
from .configuration_token_pruning import TokenPruningConfig


@strict
class TranskimmerConfig(TokenPruningConfig):
    """BERT plus a skim predictor before every layer.

    Args:
        skim_coefficient: weight of the skim loss added to the task loss: the mean over layers of the batch's kept
            real tokens divided by its padded positions (batch size x padded length), the original's normalisation,
            so the official scripts' values mean the same here: 0.5 (GLUE, IMDB), 0.3 (SQuAD), 0.2 (20News, Yelp),
            with dynamic padding as there. (Before transformers_prune 0.2 it divided by real tokens, which on SST-2
            batches of 32 pushed each token about 3x harder at the same value.)
        skim_gumbel_tau: temperature of the straight-through Gumbel-softmax used in training (1 in the paper).
        skim_predictor_hidden_size: width of the predictor MLP; None means `hidden_size`, as in the paper.
        skim_init_bias: the keep logit's bias starts at +value and the skim logit's at -value, so a model
            loaded from plain BERT keeps every token (the paper's "unbalanced initialization").
        skim_lr_scale: the predictors' logits are `skim_lr_scale` x their last Linear's output, and that Linear
            (bias included) starts `skim_lr_scale` times smaller: the same predictors at the start, whose last
            Linear the one optimizer then moves `skim_lr_scale` times faster in effect (Adam moves every weight
            about lr per step). 1 (default) is the original, whose predictors train at the main learning rate over
            whole GLUE epochs (SST-2: about 2,100 steps per epoch at batch 32). In a run of a hundred steps they
            stay at "keep everything": the stock-script recipe starts from a fine-tuned BERT with 100,
            `skim_coefficient` 0.5 and lr 2e-5 (96 to 384 steps; docs/stock_scripts.md). Keep it fixed once
            trained: the stored weights are in its units.
        keep_threshold: inference keeps a token when its keep probability (softmax of the predictor's two
            logits) is above this; 0.5 is the paper's argmax. An inference-time knob: higher skims more, without
            retraining (`transformers-prune bench --sweep keep_threshold=...`).

    Example:

    ```python
    >>> from transformers import AutoConfig
    >>> import transformers_prune
    >>> config = AutoConfig.for_model("transkimmer-bert", skim_coefficient=0.5)
    ```
    """

    model_type = "transkimmer-bert"
    training_only_keys = ("skim_coefficient", "skim_gumbel_tau", "skim_init_bias")
    build_time_keys = ("skim_predictor_hidden_size", "skim_lr_scale")

    skim_coefficient: float | int = 1.0
    skim_gumbel_tau: float | int = 1.0
    skim_predictor_hidden_size: int | None = None
    skim_init_bias: float | int = 5.0
    skim_lr_scale: float | int = 1.0
    keep_threshold: float | int = 0.5

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
        require(finite(self.skim_lr_scale) and self.skim_lr_scale > 0, "skim_lr_scale", self.skim_lr_scale, "a finite number > 0")
        require(finite(self.keep_threshold) and 0 < self.keep_threshold < 1, "keep_threshold", self.keep_threshold, "a number in (0, 1)")


__all__ = ["TranskimmerConfig"]
