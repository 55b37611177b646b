"""Turn a BERT checkpoint folder into one of our model types by a config edit, ready for stock HF scripts.

The weights are copied unchanged (our models keep BERT's parameter names); `config.json` gets the new
`model_type`, the method's settings and an `auto_map` for every Auto class the type supports; the modeling
code and its same-folder imports are copied in, so the folder also loads with `trust_remote_code=True` where
this package is not installed; tokenizer files come along.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import AutoModel, BertConfig
from transformers.dynamic_module_utils import get_relative_import_files

from .models.checkpoint_files import write_model_card

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "added_tokens.json",
)


def convertible_types() -> dict:
    """Every model type `convert` writes: the token-pruning types on BERT and on other backbones."""
    from . import BACKBONE_MODEL_TYPES, MODEL_TYPES

    return {**MODEL_TYPES, **BACKBONE_MODEL_TYPES}


def auto_map_for(model_type: str) -> dict[str, str]:
    """`{"AutoConfig": "configuration_x.XConfig", "AutoModel": "modeling_x.XModel", ...}` for a model type."""
    model_types = convertible_types()

    config_class, models = model_types[model_type]
    auto_map = {"AutoConfig": f"{config_class.__module__.rsplit('.', 1)[-1]}.{config_class.__name__}"}
    for auto_class, model_class in models.items():
        auto_map[auto_class.__name__] = f"{model_class.__module__.rsplit('.', 1)[-1]}.{model_class.__name__}"
    return auto_map


def code_files_for(model_type: str) -> list[str]:
    """The modeling and configuration files of a model type plus every same-folder module they import."""
    model_types = convertible_types()

    config_class, models = model_types[model_type]
    roots = {inspect.getfile(config_class)} | {inspect.getfile(m) for m in models.values()}
    files = set(roots)
    for root in roots:
        files.update(get_relative_import_files(root))
    return sorted(files)


def check_checkpoint_folder(path: str) -> None:
    """Raise FileNotFoundError unless `path` is a checkpoint folder (has a config.json)."""
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{path} is not a checkpoint folder: it has no config.json")


def copy_tokenizer_files(source: str, output_dir: str) -> None:
    for name in TOKENIZER_FILES:
        if os.path.isfile(os.path.join(source, name)):
            shutil.copy2(os.path.join(source, name), output_dir)


def _copy_weights(source: str, output_dir: str) -> None:
    present = [name for name in os.listdir(source) if name in WEIGHT_FILES or name.startswith("model-")]
    if present:
        for name in present:
            shutil.copy2(os.path.join(source, name), output_dir)
        return
    legacy = os.path.join(source, "pytorch_model.bin")
    if not os.path.isfile(legacy):
        raise FileNotFoundError(f"{source} has no model.safetensors (or shards) and no pytorch_model.bin to convert")
    state_dict = torch.load(legacy, map_location="cpu", weights_only=True)
    save_file({k: v.contiguous() for k, v in state_dict.items()}, os.path.join(output_dir, "model.safetensors"))


def _target_architectures(source_architectures, model_type: str) -> list[str] | None:
    """Our class for each source class with the same head (`BertForQuestionAnswering` -> `LTPForQuestionAnswering`)."""
    model_types = convertible_types()

    ours = [model_class.__name__ for model_class in model_types[model_type][1].values()]
    prefix = model_types[model_type][1][AutoModel].__name__.removesuffix("Model")
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


def convert_bert_checkpoint(source: str, model_type: str, output_dir: str, **config_overrides) -> str:
    """Write `output_dir`: the BERT checkpoint at `source` as `model_type`, with `config_overrides` applied.

    `source` is a plain BERT folder (any head) or already a `model_type` folder (a config edit between training
    stages). Returns `output_dir`. Raises ValueError for an unknown model type, an unknown config key or a bad
    value, and FileNotFoundError when `source` is not a checkpoint folder; nothing is written in those cases.
    """
    model_types = convertible_types()

    if model_type not in model_types:
        raise ValueError(f"unknown model_type {model_type!r}; expected one of {sorted(model_types)}")
    check_checkpoint_folder(source)
    with open(os.path.join(source, "config.json"), encoding="utf-8") as f:
        source_config = json.load(f)
    config_class, models = model_types[model_type]
    if source_config.get("model_type") not in (config_class.source_model_type, model_type):
        raise ValueError(
            f"{source} holds a {source_config.get('model_type')!r} checkpoint; convert --to {model_type} needs a "
            f"{config_class.source_model_type!r} (or {model_type!r}) one"
        )
    check_overrides(config_class, config_overrides)
    config = config_class.from_pretrained(source, **config_overrides)  # validates every value before writing
    config.auto_map = auto_map_for(model_type)
    config.architectures = _target_architectures(source_config.get("architectures"), model_type)

    os.makedirs(output_dir, exist_ok=True)
    config.save_pretrained(output_dir)
    _copy_weights(source, output_dir)
    for path in code_files_for(model_type):
        shutil.copy2(path, output_dir)
    copy_tokenizer_files(source, output_dir)
    card_class = next(
        (model_class for model_class in models.values() if [model_class.__name__] == config.architectures), models[AutoModel]
    )
    write_model_card(output_dir, config, card_class)
    return output_dir


__all__ = ["auto_map_for", "check_checkpoint_folder", "check_overrides", "code_files_for", "convert_bert_checkpoint", "copy_tokenizer_files"]
