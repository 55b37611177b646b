"""Config checks that reach the user as a plain `ValueError` naming the key, the bad value and what is allowed."""

import dataclasses
import math

from .token_engine import ATTENTION_BACKENDS


def require(condition: bool, key: str, value, allowed: str) -> None:
    """Raise the `ValueError` every config check uses: the key, the bad value, the allowed values."""
    if not condition:
        raise ValueError(f"{key}={value!r} is invalid; allowed: {allowed}")


def finite(value) -> bool:
    """A real number that is neither infinite nor NaN (the strict dataclass has already checked the type)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_inference_settings(config, engines: tuple[str, ...]) -> None:
    """`config.inference_engine` is one of `engines`; `config.packed_attention_backend` None or a known kernel."""
    require(config.inference_engine in engines, "inference_engine", config.inference_engine, f"{engines}")
    require(
        config.packed_attention_backend is None or config.packed_attention_backend in ATTENTION_BACKENDS,
        "packed_attention_backend", config.packed_attention_backend, f"None or one of {ATTENTION_BACKENDS}",
    )


def check_bert_settings(config) -> None:
    """The BERT fields our models build from: positive sizes, probabilities in [0, 1], a finite positive epsilon."""
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "max_position_embeddings", "type_vocab_size"):
        value = getattr(config, key)
        require(isinstance(value, int) and value > 0, key, value, "an integer > 0")
    require(
        config.hidden_size % config.num_attention_heads == 0,
        "hidden_size", config.hidden_size, f"a multiple of num_attention_heads (= {config.num_attention_heads})",
    )
    dropouts = ["hidden_dropout_prob", "attention_probs_dropout_prob"]
    if getattr(config, "classifier_dropout", None) is not None:
        dropouts.append("classifier_dropout")
    for key in dropouts:
        value = getattr(config, key)
        require(finite(value) and 0 <= value <= 1, key, value, "a probability in [0, 1]")
    require(
        finite(config.layer_norm_eps) and config.layer_norm_eps > 0, "layer_norm_eps", config.layer_norm_eps, "a finite number > 0"
    )
    require(
        finite(config.initializer_range) and config.initializer_range >= 0,
        "initializer_range", config.initializer_range, "a finite number >= 0",
    )


class PlainValidationMixin:
    """For our `@strict` configs: run each `validate_*` method defined by this package's config classes at
    construction and whenever a field is assigned afterwards, and take `from_pretrained(path, key=value)`
    overrides into the constructor.

    The strict dataclass runs `validate_*` again after init (and at save) but wraps their error in its own exception
    type, and it sets `from_pretrained` overrides after construction, where that wrapping applies too; running the
    checks first gives users the plain message at construction and at load. Strict dataclasses check only the
    type of an assigned value: `config.inference_engine = "foo"` would pass, so an assignment that fails a check
    is undone and raises. Reads cost nothing extra (models read their config at every forward).
    """

    def __post_init__(self, **kwargs):
        self._run_checks()
        super().__post_init__(**kwargs)

    def validate_bert(self):
        check_bert_settings(self)

    def _run_checks(self) -> None:
        for cls in reversed(type(self).__mro__):  # BERT's fields first: the method's checks build on them
            if issubclass(cls, PlainValidationMixin):
                for name, check in vars(cls).items():
                    if name.startswith("validate_"):
                        check(self)

    def __setattr__(self, name, value):
        # HF marks the end of its `__post_init__` with `_post_init_done`; before it fields are set one by one.
        if not self.__dict__.get("_post_init_done") or name not in self.__dataclass_fields__:
            super().__setattr__(name, value)
            return
        previous = getattr(self, name)
        super().__setattr__(name, value)
        try:
            self._run_checks()
        except ValueError:
            super().__setattr__(name, previous)
            raise

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        field_names = {field.name for field in dataclasses.fields(cls)}
        overrides = {key: kwargs.pop(key) for key in list(kwargs) if key in field_names}
        # A BERT config.json's "model_type": "bert" would shadow the class's own type on the instance.
        values = {key: value for key, value in config_dict.items() if key != "model_type"}
        return super().from_dict({**values, **overrides}, **kwargs)


__all__ = ["PlainValidationMixin", "check_bert_settings", "check_inference_settings", "finite", "require"]
