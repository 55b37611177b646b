"""Settings shared by every token-pruning model type: how inference runs, independent of the method."""

import dataclasses

from huggingface_hub.dataclasses import strict
from transformers import BertConfig

from .token_engine import ATTENTION_BACKENDS

INFERENCE_ENGINES = ("packed", "masked")


def require(condition: bool, key: str, value, allowed: str) -> None:
    """Raise the `ValueError` every config check uses: the key, the bad value, the allowed values."""
    if not condition:
        raise ValueError(f"{key}={value!r} is invalid; allowed: {allowed}")


@strict
class TokenPruningConfig(BertConfig):
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

    keys_to_ignore_at_inference = ["tokens_per_layer", "pruning_loss", "action_log_prob", "hidden_states", "attentions"]

    prune_at_inference: bool = True
    inference_engine: str = "packed"
    packed_attention_backend: str | None = None

    def __post_init__(self, **kwargs):
        # The strict dataclass runs `validate_*` again after init (and at save) but wraps their error in its own
        # exception type; calling them here first gives users a plain ValueError at construction and load.
        for cls in type(self).__mro__:
            if issubclass(cls, TokenPruningConfig):
                for name, check in vars(cls).items():
                    if name.startswith("validate_"):
                        check(self)
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        # `from_pretrained(path, key=value)` would set overrides after construction, where the strict dataclass's
        # re-validation wraps our ValueError; passing them to the constructor keeps the plain message.
        field_names = {field.name for field in dataclasses.fields(cls)}
        overrides = {key: kwargs.pop(key) for key in list(kwargs) if key in field_names}
        return super().from_dict({**config_dict, **overrides}, **kwargs)

    def validate_token_pruning(self):
        require(isinstance(self.prune_at_inference, bool), "prune_at_inference", self.prune_at_inference, "True or False")
        require(self.inference_engine in INFERENCE_ENGINES, "inference_engine", self.inference_engine, f"{INFERENCE_ENGINES}")
        require(
            self.packed_attention_backend is None or self.packed_attention_backend in ATTENTION_BACKENDS,
            "packed_attention_backend", self.packed_attention_backend, f"None or one of {ATTENTION_BACKENDS}",
        )


__all__ = ["TokenPruningConfig"]
