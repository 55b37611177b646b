"""Configuration of `ltp` (Learned Token Pruning, Kim et al., KDD 2022) on BERT."""

from huggingface_hub.dataclasses import strict

from .config_checks import finite, require
from .configuration_token_pruning import TokenPruningConfig

PRUNE_MODES = ("absolute_threshold", "topk")
MASKING_MODES = ("soft", "hard")
SCORING_MODES = ("mean_norm", "mean")


@strict
class LTPConfig(TokenPruningConfig):
    """BERT whose layers drop the tokens that receive little attention.

    Inside every layer, right after the attention softmax, each token gets a score: the attention it receives,
    averaged over heads and queries. Tokens scoring low skip the rest of that layer (its FFN) and every later
    layer. Keys with the original code's names keep its meaning; the last three are `TrainingArguments` there
    and live in the config here, so the stock `Trainer` and `run_glue.py` train every stage.

    Args:
        prune_mode: "absolute_threshold" (learned: prune a token scoring below its layer's threshold) or "topk"
            (the SpAtten-style baseline: keep a scheduled fraction of each input's tokens).
        final_token_threshold: absolute_threshold's base threshold grows linearly with depth,
            `final_token_threshold * l / num_hidden_layers` at layer l (0-based, as in the original code, so
            layer 0 never prunes); a learned offset per layer is added. 0.01 is the original README's value.
        scoring_mode: how the attention a token receives is normalised. "mean" (default, the original's)
            divides the sum over heads and live queries by heads x `score_normalization_length`, as the original
            does with inputs padded to 128: an average token scores about 1/128 whatever the input's length, so
            thresholds transfer across lengths and `final_token_threshold`, `temperature` and `lambda_threshold`
            keep the original's values. "mean_norm" divides by heads x the example's live queries instead, a true
            average: scores are then about `score_normalization_length` / n times larger on an input of n tokens,
            so thresholds and temperature need that factor (about 10 on SST-2) and do not transfer across lengths.
        score_normalization_length: the fixed length of scoring_mode="mean" and of the regulariser's mean.
        token_keep_rate: topk's keep rate at the last layer. The first max(3, ceil(0.15 L)) layers keep every
            token; the rate then falls linearly to this value. Counts are rounded from each input's length.
        masking_mode: how training drops tokens. "soft" (stage 1): nothing is dropped, each pruning layer's
            output is scaled per token by sigmoid((score - threshold) / temperature) and the loss gains
            `lambda_threshold` x the sum over layers of the mean mask, so thresholds and weights learn together.
            "hard" (stage 2, and topk): tokens below the fixed thresholds are dropped as at inference.
            Evaluation is always hard.
        temperature: T of the soft mask; the paper searched 1e-4 to 2e-3.
        lambda_threshold: weight of the soft-mask regulariser; higher prunes more (the README: 0.01 to 0.2). The
            mean is over each input's `score_normalization_length` positions (real tokens' masks; padding adds 0),
            as the original's over inputs padded to 128, so each token is pushed as hard as there.
        threshold_lr_scale: the learned offset of layer l is `threshold_lr_scale x threshold_offsets[l]`; Adam
            moves every parameter by about the learning rate per step, so this is the thresholds' learning rate
            relative to the weights'. 1 (default) is the original recipe's: its separate threshold optimizer runs at
            the main learning rate unless `--lr_threshold` is given, and the README never gives it. Keep it fixed
            between stages: the stored offsets are in its units.
        threshold_scale: inference-time multiplier on every layer's threshold: above 1 prunes more, below 1 less,
            without retraining (`transformers-prune bench --sweep threshold_scale=...`). Training ignores it.

    Example:

    ```python
    >>> from transformers import AutoConfig
    >>> import transformers_prune
    >>> config = AutoConfig.for_model("ltp", masking_mode="soft", lambda_threshold=0.1)
    ```
    """

    model_type = "ltp"
    training_only_keys = ("masking_mode", "temperature", "lambda_threshold")

    prune_mode: str = "absolute_threshold"
    final_token_threshold: float | int = 0.01
    scoring_mode: str = "mean"
    score_normalization_length: int = 128
    token_keep_rate: float | int = 0.5
    masking_mode: str = "hard"
    temperature: float | int = 1e-3
    lambda_threshold: float | int = 0.1
    threshold_lr_scale: float | int = 1.0
    threshold_scale: float | int = 1.0

    def validate_ltp(self):
        require(self.prune_mode in PRUNE_MODES, "prune_mode", self.prune_mode, f"{PRUNE_MODES}")
        require(
            finite(self.final_token_threshold) and self.final_token_threshold >= 0,
            "final_token_threshold", self.final_token_threshold, "a finite number >= 0",
        )
        require(self.scoring_mode in SCORING_MODES, "scoring_mode", self.scoring_mode, f"{SCORING_MODES}")
        require(
            self.score_normalization_length > 0,
            "score_normalization_length", self.score_normalization_length, "an integer > 0",
        )
        require(0 < self.token_keep_rate <= 1, "token_keep_rate", self.token_keep_rate, "a number in (0, 1]")
        require(self.masking_mode in MASKING_MODES, "masking_mode", self.masking_mode, f"{MASKING_MODES}")
        require(
            not (self.masking_mode == "soft" and self.prune_mode == "topk"),
            "masking_mode", self.masking_mode, "'hard' with prune_mode='topk' (top-k has no thresholds to learn)",
        )
        require(finite(self.temperature) and self.temperature > 0, "temperature", self.temperature, "a finite number > 0")
        require(
            finite(self.lambda_threshold) and self.lambda_threshold >= 0,
            "lambda_threshold", self.lambda_threshold, "a finite number >= 0",
        )
        require(
            finite(self.threshold_lr_scale) and self.threshold_lr_scale > 0,
            "threshold_lr_scale", self.threshold_lr_scale, "a finite number > 0",
        )
        require(
            finite(self.threshold_scale) and self.threshold_scale > 0, "threshold_scale", self.threshold_scale, "a finite number > 0"
        )


__all__ = ["LTPConfig"]
