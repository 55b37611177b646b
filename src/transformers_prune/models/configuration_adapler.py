"""Configuration of `adapler-bert` (AdapLeR, Modarressi et al., ACL 2022)."""

from huggingface_hub.dataclasses import strict

from .config_checks import finite, require
from .configuration_token_pruning import TokenPruningConfig


@strict
class AdapLeRConfig(TokenPruningConfig):
    """BERT plus a contribution predictor before every layer that drops tokens with a small predicted share.

    Args:
        cp_hidden_size: width of each contribution predictor (Linear(hidden, width) -> GELU -> Linear(width, 1)).
        cp_lr_scale: the predictors' logits are `cp_lr_scale` x their last Linear's output, and that Linear starts
            `cp_lr_scale` times smaller: the same predictors at the start, whose last Linear the one optimizer then
            moves `cp_lr_scale` times faster in effect (Adam moves every weight about lr per step). 1 (default) is
            the original, whose predictors train at the main learning rate for 5 epochs of all of SST-2 (about
            10,500 steps at batch 32). In a run of a hundred steps their shares stay near uniform, so no token
            leaves: the stock-script recipe uses 5.76 / (training steps x learning rate), at least 1 (300 for 96
            steps at 2e-4; docs/stock_scripts.md). Keep it fixed once trained: the stored weights are in its units.
        eta_init, eta_min, eta_max: the per-layer eta starts at `eta_init` and stays within [eta_min, eta_max];
            a token is dropped before layer l when its predicted share is below eta_l / n (n = live tokens).
        eta_lr_scale: eta_l = eta_min + (eta_max - eta_min) * sigmoid(eta_lr_scale * eta_logits[l]). Adam moves
            every parameter by about the learning rate per step, so near its start eta moves about
            0.18 x `eta_lr_scale` x lr per step: with 100 and lr 3e-5, the original's separate 5e-4. This lets the
            stock `Trainer`'s single optimizer train eta at its own speed, within its bounds.
        gamma: weight of the depth-weighted KL divergence between the saliency target and each predictor's
            distribution (layer l weighs L - l: early layers count more).
        phi: weight of the soft length (tokens processed per layer, summed over layers, mean over the batch); its
            gradient reaches eta only, as the original's separate "speed-up" objective.
        soft_removal_beta: the small slope of the soft mask above the threshold (0.1 in the original).
        sharpness_start, sharpness_end: lambda of the soft mask, annealed geometrically over training (by the
            training-progress callback `import transformers_prune` installs in every `Trainer`), so training ends
            close to the hard removal used at inference. The original steps 10, 100, ..., 1e5 over 5 epochs.
        eta_scale: inference-time multiplier on eta: above 1 drops more tokens, below 1 fewer, without retraining
            (`transformers-prune bench --sweep eta_scale=...`).
        kl_through_mask: the KL's gradient also reaches earlier predictors and BERT through the soft mask (computed
            with eta held fixed), as in the original; False detaches the mask (transformers_prune 0.1).
        train_theta: learn the original's THETA (one per layer but the first), which scales [CLS]'s share of the KL
            target and is moved by the task loss and length term; False keeps it at 1 (transformers_prune 0.1).
        theta_lr_scale: THETA = 1 + theta_lr_scale x `theta_offsets`: with the original main learning rate 3e-5,
            16.7 moves THETA about 5e-4 per step, as the original's separate optimizer does.

    Example:

    ```python
    >>> from transformers import AutoConfig
    >>> import transformers_prune
    >>> config = AutoConfig.for_model("adapler-bert", gamma=0.005, phi=0.0005)
    ```
    """

    model_type = "adapler-bert"
    training_only_keys = ("eta_init", "gamma", "phi", "soft_removal_beta", "sharpness_start", "sharpness_end", "kl_through_mask")
    build_time_keys = ("cp_hidden_size", "cp_lr_scale")

    cp_hidden_size: int = 32
    cp_lr_scale: float | int = 1.0
    eta_init: float | int = 0.25
    eta_min: float | int = 0.01
    eta_max: float | int = 1.0
    eta_lr_scale: float | int = 100.0
    gamma: float | int = 0.005
    phi: float | int = 0.0005
    soft_removal_beta: float | int = 0.1
    sharpness_start: float | int = 10.0
    sharpness_end: float | int = 1e5
    eta_scale: float | int = 1.0
    kl_through_mask: bool = True
    train_theta: bool = True
    theta_lr_scale: float | int = 16.7

    def validate_adapler(self):
        require(self.cp_hidden_size > 0, "cp_hidden_size", self.cp_hidden_size, "an integer > 0")
        require(finite(self.cp_lr_scale) and self.cp_lr_scale > 0, "cp_lr_scale", self.cp_lr_scale, "a finite number > 0")
        require(finite(self.eta_max) and self.eta_max > 0, "eta_max", self.eta_max, "a finite number > 0")
        require(0 < self.eta_min < self.eta_max, "eta_min", self.eta_min, f"0 < eta_min < eta_max (= {self.eta_max})")
        require(self.eta_min < self.eta_init < self.eta_max, "eta_init", self.eta_init, "strictly between eta_min and eta_max")
        require(finite(self.eta_lr_scale) and self.eta_lr_scale > 0, "eta_lr_scale", self.eta_lr_scale, "a finite number > 0")
        require(finite(self.gamma) and self.gamma >= 0, "gamma", self.gamma, "a finite number >= 0")
        require(finite(self.phi) and self.phi >= 0, "phi", self.phi, "a finite number >= 0")
        require(
            finite(self.soft_removal_beta) and self.soft_removal_beta >= 0,
            "soft_removal_beta", self.soft_removal_beta, "a finite number >= 0",
        )
        require(
            finite(self.sharpness_start) and self.sharpness_start > 0, "sharpness_start", self.sharpness_start, "a finite number > 0"
        )
        require(
            finite(self.sharpness_end) and self.sharpness_end >= self.sharpness_start,
            "sharpness_end", self.sharpness_end, f"a finite number >= sharpness_start (= {self.sharpness_start})",
        )
        require(finite(self.eta_scale) and self.eta_scale > 0, "eta_scale", self.eta_scale, "a finite number > 0")
        require(isinstance(self.kl_through_mask, bool), "kl_through_mask", self.kl_through_mask, "True or False")
        require(isinstance(self.train_theta, bool), "train_theta", self.train_theta, "True or False")
        require(
            finite(self.theta_lr_scale) and self.theta_lr_scale > 0, "theta_lr_scale", self.theta_lr_scale, "a finite number > 0"
        )


__all__ = ["AdapLeRConfig"]
