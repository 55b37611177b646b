"""Turn a BERT checkpoint folder into one of our model types by a config edit, ready for stock HF scripts.

The source's tensors are carried over unchanged (our models keep BERT's parameter names); the tensors the method
adds (predictors, thresholds, selectors) are initialised from a seed and saved with them, so every load of the
folder gives the same model and transformers reports nothing missing. `config.json` gets the new `model_type`,
the method's settings and an `auto_map` for every Auto class the type supports; the modeling code and its
same-folder imports are copied in (so the folder also loads with `trust_remote_code=True` where this package
is not installed), with the tokenizer files and a model card.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re

import torch
from transformers import AutoModel, BertConfig

from .folders import CONFIG_FILE, check_checkpoint_folder, check_output_path, copy_tokenizer_files, staged_output_folder
from .quiet import quiet_transformers
from .registry import BACKBONE_MODEL_TYPES, MODEL_TYPES

logger = logging.getLogger(__name__)

# Source config keys the converted config sets itself.
REPLACED_KEYS = ("model_type", "transformers_version", "architectures", "auto_map")
# Every model type convert writes: the token-pruning types on BERT and on other backbones.
CONVERTIBLE_TYPES = {**MODEL_TYPES, **BACKBONE_MODEL_TYPES}
# Tensors (checkpoint names) of the encoder itself; any other tensor belongs to a task head.
ENCODER_TENSOR = re.compile(r"(bert\.|roberta\.)?(embeddings|encoder)\.")


def auto_map_for(model_type: str) -> dict[str, str]:
    """`{"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel", ...}` for a model type."""
    config_class, models = CONVERTIBLE_TYPES[model_type]
    auto_map = {"AutoConfig": f"{config_class.__module__.rsplit('.', 1)[-1]}.{config_class.__name__}"}
    for auto_class, model_class in models.items():
        auto_map[auto_class.__name__] = f"{model_class.__module__.rsplit('.', 1)[-1]}.{model_class.__name__}"
    return auto_map


def _target_architectures(source_architectures, model_type: str) -> list[str] | None:
    """Our class for each source class with the same head (`BertForQuestionAnswering` -> `LTPForQuestionAnswering`)."""
    ours = [model_class.__name__ for model_class in CONVERTIBLE_TYPES[model_type][1].values()]
    prefix = CONVERTIBLE_TYPES[model_type][1][AutoModel].__name__.removesuffix("Model")
    mapped = []
    for name in source_architectures or []:
        head = name.split("For", 1)[1] if "For" in name else ""
        candidate = f"{prefix}For{head}" if head else f"{prefix}Model"
        if candidate in ours:
            mapped.append(candidate)
    return mapped or None


def check_overrides(config_class, overrides: dict) -> None:
    """Refuse keys the config class does not have (a typo must not become a silently ignored attribute)."""
    allowed = {field.name for field in dataclasses.fields(config_class)} | {"num_labels"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        method_keys = sorted(allowed - {field.name for field in dataclasses.fields(BertConfig)} - {"num_labels"})
        raise ValueError(f"{config_class.model_type} has no config key(s) {unknown}; its own keys are {method_keys}")


def converted_config(source_config: dict, model_type: str, overrides: dict):
    """The `model_type` config of a checkpoint whose config.json holds `source_config`, with `overrides` applied;
    raises ValueError naming a bad key or value."""
    config_class, _ = CONVERTIBLE_TYPES[model_type]
    check_overrides(config_class, overrides)
    values = {key: value for key, value in source_config.items() if key not in REPLACED_KEYS}
    if "num_labels" in overrides:  # a new label count replaces the source's label names
        values.pop("id2label", None)
        values.pop("label2id", None)
    config = config_class.from_dict(values, **overrides)  # validates every value
    config.auto_map = auto_map_for(model_type)
    config.architectures = _target_architectures(source_config.get("architectures"), model_type)
    return config


def _module_patterns(keys) -> str:
    """`bert.encoder.skim_predictors.0.dense.weight, ...` -> `"bert.encoder.skim_predictors.*"`."""
    return ", ".join(sorted({re.sub(r"\.\d+\..*", ".*", key) for key in keys}))


def load_with_new_parameters(model_class, source: str, config, seed: int, overrides: dict):
    """`source`'s weights in `model_class(config)`, every parameter the checkpoint lacks initialised after
    `torch.manual_seed(seed)`. Raises ValueError when the config changes the shape of a checkpoint tensor or leaves
    an encoder tensor without a place: the result would not be the trained model."""
    torch.manual_seed(seed)
    with quiet_transformers():  # the load report lists the new parameters as MISSING: expected here
        model, loading = model_class.from_pretrained(
            source, config=config, dtype="auto", ignore_mismatched_sizes=True, output_loading_info=True
        )
    settings = f"with {', '.join(f'{key}={value!r}' for key, value in overrides.items())}" if overrides else "as it is"
    mismatched = sorted(loading["mismatched_keys"])
    if mismatched:
        changes = ", ".join(f"{key} {list(old)} -> {list(new)}" for key, old, new in mismatched[:4])
        raise ValueError(
            f"{source} converted {settings} changes the shape of {len(mismatched)} trained tensor(s) ({changes}); "
            "convert keeps every trained tensor, so it cannot change sizes or label counts"
        )
    orphans = sorted(key for key in loading["unexpected_keys"] if ENCODER_TENSOR.match(key))
    if orphans:
        raise ValueError(
            f"{source} converted {settings} has no place for {len(orphans)} of its encoder tensors "
            f"({_module_patterns(orphans)}); convert keeps every trained tensor, so settings such as "
            "num_hidden_layers or selection_layers must match the checkpoint"
        )
    heads = _module_patterns(loading["unexpected_keys"])
    if heads and not config.architectures:
        raise ValueError(
            f"{source}'s config.json names no architecture, so convert cannot tell which head its tensors {heads} "
            "belong to; add the class it was saved from, e.g. \"architectures\": [\"BertForSequenceClassification\"]"
        )
    if heads:  # e.g. BERT's pre-training heads: none of our types has a place for them
        logger.warning("%s: %s has no place for %s; these tensors are left out", source, model_class.__name__, heads)
    if loading["missing_keys"]:
        logger.info("new parameters initialised from seed %d: %s", seed, _module_patterns(loading["missing_keys"]))
    return model


def convert_bert_checkpoint(
    source: str, model_type: str, output_dir: str, *, seed: int = 0, overwrite: bool = False, **config_overrides
) -> str:
    """Write `output_dir`: the BERT checkpoint at `source` as `model_type`, with `config_overrides` applied and the
    method's new parameters initialised from `seed`.

    `source` is a plain BERT folder (any head) or already a `model_type` folder (a config edit between training
    stages). Returns `output_dir`. Raises ValueError for an unknown model type, an unknown config key, a bad value,
    settings that change a trained tensor's shape, an output that is the source (or holds it) and a non-empty
    output without `overwrite`; FileNotFoundError when `source` is not a checkpoint folder with weights. Nothing is
    written in those cases, and an interrupted conversion leaves `output_dir` as it was.
    """
    if model_type not in CONVERTIBLE_TYPES:
        raise ValueError(f"unknown model_type {model_type!r}; expected one of {sorted(CONVERTIBLE_TYPES)}")
    check_checkpoint_folder(source, need_weights=True)
    check_output_path(output_dir, overwrite, [source])
    with open(os.path.join(source, CONFIG_FILE), encoding="utf-8") as f:
        source_config = json.load(f)
    source_type = CONVERTIBLE_TYPES[model_type][0].source_model_type
    if source_config.get("model_type") not in (source_type, model_type):
        raise ValueError(
            f"{source} holds a {source_config.get('model_type')!r} checkpoint; convert --to {model_type} needs a "
            f"{source_type!r} (or {model_type!r}) one"
        )
    config = converted_config(source_config, model_type, config_overrides)
    models = CONVERTIBLE_TYPES[model_type][1]
    model_class = next((m for m in models.values() if [m.__name__] == config.architectures), models[AutoModel])
    model = load_with_new_parameters(model_class, source, config, seed, config_overrides)
    with staged_output_folder(output_dir, overwrite, [source]) as staged:
        model.save_pretrained(staged)  # also the code files, the complete auto_map and the model card
        copy_tokenizer_files(source, staged)
    return output_dir


__all__ = ["CONVERTIBLE_TYPES", "auto_map_for", "check_overrides", "convert_bert_checkpoint", "converted_config", "load_with_new_parameters"]
