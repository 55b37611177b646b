"""`--sweep KEY=V1,V2,...`: re-run a trained checkpoint with an inference-time config field set to each value.

The keys that can be swept are the fields the token-pruning configs add to BERT's (`prune_at_inference`,
`inference_engine`, and each method's own fields); values are JSON (`true`, `0.5`) or plain strings (`masked`).
`--sweep` may be given several times: each sweep runs on every checkpoint whose config has its key (so one run
traces Transkimmer's `keep_threshold`, LTP's `threshold_scale` and AdapLeR's `eta_scale` side by side). The model
reads these fields at every forward; fields that shape the modules when a model is built (such as
`skim_predictor_hidden_size`) and fields only training reads (`training_only_keys`, such as LTP's
`lambda_threshold`: every point would measure the same model) cannot be swept.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass

from huggingface_hub.errors import StrictDataclassError

from ..text_values import parse_json_or_text
from ..models.configuration_token_pruning import TokenPruningConfig
from .checkpoints import Checkpoint


@dataclass(frozen=True)
class Sweep:
    key: str
    values: tuple


def parse_sweep(text: str) -> Sweep:
    """`"prune_at_inference=true,false"` -> `Sweep("prune_at_inference", (True, False))`."""
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values.strip():
        raise ValueError(f"--sweep expects KEY=V1,V2,..., got {text!r}")
    return Sweep(key.strip(), tuple(parse_json_or_text(value.strip()) for value in values.split(",")))


def sweepable_keys(config_class: type) -> tuple[str, ...]:
    """The config fields declared by the token-pruning config classes (not BERT's architecture fields), less those
    that shape the modules (`build_time_keys`) and those inference never reads (`training_only_keys`)."""
    return tuple(
        name
        for cls in reversed(config_class.__mro__)
        if issubclass(cls, TokenPruningConfig)
        for name in inspect.get_annotations(cls)
        if name not in config_class.build_time_keys and name not in config_class.training_only_keys
    )


def applies_to(sweep: Sweep, checkpoint: Checkpoint) -> bool:
    """Whether `sweep` runs on `checkpoint`: a token-pruning checkpoint whose config has the swept key."""
    return checkpoint.is_token_pruning and sweep.key in sweepable_keys(type(checkpoint.config))


def check_sweeps(sweeps: tuple[Sweep, ...], checkpoints: list[Checkpoint]) -> None:
    """Raise ValueError unless every sweep runs on some checkpoint and each of those configs accepts every swept
    value. Plain BERT checkpoints have no such knob; they run once, as baselines."""
    pruning = [checkpoint for checkpoint in checkpoints if checkpoint.is_token_pruning]
    if sweeps and not pruning:
        raise ValueError("--sweep needs a token-pruning checkpoint; every checkpoint given is plain BERT")
    for sweep in sweeps:
        swept = [checkpoint for checkpoint in pruning if applies_to(sweep, checkpoint)]
        if not swept:
            types = sorted({checkpoint.model_type for checkpoint in pruning})
            keys = sorted({key for checkpoint in pruning for key in sweepable_keys(type(checkpoint.config))})
            if any(sweep.key in type(checkpoint.config).training_only_keys for checkpoint in pruning):
                raise ValueError(
                    f"--sweep {sweep.key}: {', '.join(types)} read it only in training, so every point would measure the "
                    f"same model; sweepable: {', '.join(keys)}"
                )
            raise ValueError(f"unknown sweep key {sweep.key!r} for {', '.join(types)}; sweepable: {', '.join(keys)}")
        for checkpoint in swept:
            config = checkpoint.config
            for value in sweep.values:
                try:
                    type(config).from_dict({**config.to_dict(), sweep.key: value})  # runs the config's own validation
                except (StrictDataclassError, ValueError, TypeError) as error:
                    raise ValueError(f"--sweep {sweep.key}={value!r} is invalid for {checkpoint.path}: {error}") from error


def sweep_points(row: dict) -> list[dict]:
    """Every sweep point measured for a report row, over all its sweeps."""
    return [point for sweep in row.get("sweeps", ()) for point in sweep["points"]]


@contextmanager
def config_value(model, key: str, value):
    """Set `model.config.<key>` to `value` for the duration of the block (the model reads it at each forward)."""
    saved = getattr(model.config, key)
    setattr(model.config, key, value)
    try:
        yield
    finally:
        setattr(model.config, key, saved)


__all__ = ["Sweep", "applies_to", "check_sweeps", "config_value", "parse_sweep", "sweep_points", "sweepable_keys"]
