"""Config checks that reach the user as a plain `ValueError` naming the key, the bad value and what is allowed."""

import dataclasses

from .token_engine import ATTENTION_BACKENDS


def require(condition: bool, key: str, value, allowed: str) -> None:
    """Raise the `ValueError` every config check uses: the key, the bad value, the allowed values."""
    if not condition:
        raise ValueError(f"{key}={value!r} is invalid; allowed: {allowed}")


def check_inference_settings(config, engines: tuple[str, ...]) -> None:
    """`config.inference_engine` is one of `engines`; `config.packed_attention_backend` None or a known kernel."""
    require(config.inference_engine in engines, "inference_engine", config.inference_engine, f"{engines}")
    require(
        config.packed_attention_backend is None or config.packed_attention_backend in ATTENTION_BACKENDS,
        "packed_attention_backend", config.packed_attention_backend, f"None or one of {ATTENTION_BACKENDS}",
    )


class PlainValidationMixin:
    """For our `@strict` configs: run each `validate_*` method defined by this package's config classes at
    construction, and take `from_pretrained(path, key=value)` overrides into the constructor.

    The strict dataclass runs `validate_*` again after init (and at save) but wraps their error in its own exception
    type, and it sets `from_pretrained` overrides after construction, where that wrapping applies too; running the
    checks first gives users the plain message at construction and at load.
    """

    def __post_init__(self, **kwargs):
        for cls in type(self).__mro__:
            if issubclass(cls, PlainValidationMixin):
                for name, check in vars(cls).items():
                    if name.startswith("validate_"):
                        check(self)
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        field_names = {field.name for field in dataclasses.fields(cls)}
        overrides = {key: kwargs.pop(key) for key in list(kwargs) if key in field_names}
        return super().from_dict({**config_dict, **overrides}, **kwargs)


__all__ = ["PlainValidationMixin", "check_inference_settings", "require"]
