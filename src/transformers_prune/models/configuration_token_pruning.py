"""Settings shared by every token-pruning model type: how inference runs, independent of the method."""

from huggingface_hub.dataclasses import strict
from transformers import BertConfig

from .config_checks import PlainValidationMixin, check_inference_settings, require

INFERENCE_ENGINES = ("packed", "masked")


@strict
class TokenPruningConfig(PlainValidationMixin, BertConfig):
    """Base of the token-pruning configs; never used on its own.

    Args:
        prune_at_inference: drop tokens at inference. False runs every token, giving exactly the outputs of
            the BERT the model was loaded from (on the packed engine: our "dense-packed" baseline).
        inference_engine: "packed" (default) runs live tokens only and turns dropped tokens into saved time;
            "masked" runs the padded batch and hides dropped tokens with masks, as the original papers' code
            does (no speed-up; for checking and for attention maps).
        packed_attention_backend: force one of `token_engine.ATTENTION_BACKENDS`; None picks the kernel measured
            fastest for the device.
    """

    source_model_type = "bert"  # the checkpoints `transformers-prune convert` starts from
    # Fields that shape the modules when a model is built: a model refuses to run once one of them has changed.
    build_time_keys = ()
    # Fields read only in training (losses, schedules, initial values): an inference-time sweep of them changes nothing.
    training_only_keys = ()
    keys_to_ignore_at_inference = ["tokens_per_layer", "pruning_loss", "action_log_prob", "hidden_states", "attentions"]

    prune_at_inference: bool = True
    inference_engine: str = "packed"
    packed_attention_backend: str | None = None

    def validate_token_pruning(self):
        require(isinstance(self.prune_at_inference, bool), "prune_at_inference", self.prune_at_inference, "True or False")
        check_inference_settings(self, INFERENCE_ENGINES)


__all__ = ["TokenPruningConfig"]
