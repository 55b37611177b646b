"""Configuration of `autobert` (TR-BERT, Ye et al., "TR-BERT: Dynamic Token Reduction for Accelerating BERT
Inference", NAACL 2021)."""

from huggingface_hub.dataclasses import strict

from .config_checks import finite, require
from .configuration_token_pruning import TokenPruningConfig

TRAINING_STAGES = ("train_rl", "train_both")


@strict
class AutoBertConfig(TokenPruningConfig):
    """BERT plus a token selector on the input of a few layers, trained by reinforcement learning.

    Args:
        selection_layers: 0-based layers on whose input a selector keeps or drops tokens, ascending. None means
            the official code's `[1, num_hidden_layers // 2]` (resolved when the config is built, so checkpoints
            record it).
        selector_hidden_size: width of each selector, Linear(hidden, width) -> GELU -> Linear(width, 1) -> sigmoid.
        keep_threshold: inference keeps a token when its keep-probability is >= this (0 keeps everything).
        training_stage: what a `Trainer` run trains. "train_rl": the selectors only, by REINFORCE; BERT and the
            head are frozen (`requires_grad=False`) and run without autograd. "train_both": everything, the task
            loss taken through the sampled reduced forward, plus the policy loss.
        rl_num_samples: rollouts (sampled selections) per input in training; their mean reward is the baseline.
        alpha: weight of the kept fraction in the reward, reward = -task loss - alpha x kept fraction (the
            paper's harmonic coefficient). The kept fraction here is over each input's real tokens; the original
            divides by the padded training length (512 in its IMDB recipe), so its alpha a corresponds to ours
            a x (real length / padded length): about a / 2 on IMDB at 512 (mean 274 tokens), a on inputs that fill
            the window. The official table: IMDB 1, SQuAD 5, Yelp 2, 20News 1 (its values, before this mapping).
        guide_rate: in "train_rl", for this fraction of the training steps the first rollout of every input
            follows the gradient-residual heuristic (imitation), when the batch carries `residual_scores`.
        train_teacher: the task loss is the soft cross-entropy against `teacher_logits` given with each input,
            instead of the gold label's cross-entropy (the official `--train_teacher`).
        kd_temperature: temperature of that soft cross-entropy.

    Example:

    ```python
    >>> from transformers import AutoConfig
    >>> import transformers_prune
    >>> config = AutoConfig.for_model("autobert", alpha=1.0, training_stage="train_rl")
    ```
    """

    model_type = "autobert"
    training_only_keys = ("training_stage", "rl_num_samples", "alpha", "guide_rate", "train_teacher", "kd_temperature")
    build_time_keys = ("selection_layers", "selector_hidden_size")

    selection_layers: list[int] | None = None
    selector_hidden_size: int = 32
    keep_threshold: float | int = 0.5
    training_stage: str = "train_rl"
    rl_num_samples: int = 8
    alpha: float | int = 1.0
    guide_rate: float | int = 0.5
    train_teacher: bool = False
    kd_temperature: float | int = 1.0

    def __post_init__(self, **kwargs):
        if self.selection_layers is None:
            layers = self.num_hidden_layers
            self.selection_layers = [layer for layer in sorted({1, layers // 2}) if layer < layers]
        super().__post_init__(**kwargs)

    def validate_autobert(self):
        layers = self.selection_layers
        require(
            isinstance(layers, list) and len(layers) > 0 and all(isinstance(i, int) for i in layers)
            and layers == sorted(set(layers)) and 0 <= layers[0] and layers[-1] < self.num_hidden_layers,
            "selection_layers", layers, f"a non-empty ascending list of distinct layer indices in [0, {self.num_hidden_layers})",
        )
        require(self.selector_hidden_size > 0, "selector_hidden_size", self.selector_hidden_size, "an integer > 0")
        require(0 <= self.keep_threshold <= 1, "keep_threshold", self.keep_threshold, "a number in [0, 1]")
        require(self.training_stage in TRAINING_STAGES, "training_stage", self.training_stage, f"one of {TRAINING_STAGES}")
        require(self.rl_num_samples >= 2, "rl_num_samples", self.rl_num_samples, "an integer >= 2 (the baseline is their mean)")
        require(finite(self.alpha) and self.alpha >= 0, "alpha", self.alpha, "a finite number >= 0")
        require(0 <= self.guide_rate <= 1, "guide_rate", self.guide_rate, "a number in [0, 1]")
        require(isinstance(self.train_teacher, bool), "train_teacher", self.train_teacher, "True or False")
        require(
            finite(self.kd_temperature) and self.kd_temperature > 0, "kd_temperature", self.kd_temperature, "a finite number > 0"
        )


__all__ = ["AutoBertConfig"]
