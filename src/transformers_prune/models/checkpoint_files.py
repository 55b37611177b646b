"""What makes a saved checkpoint of ours load anywhere: a complete `auto_map` and a model card.

HF copies a model's code into the folder it saves when the class is registered for an Auto class
(`register_for_auto_class`), but writes only that one class into `auto_map`; a checkpoint saved from the
classification head would then not load as `AutoModel` or `AutoModelForQuestionAnswering` with
`trust_remote_code`. `complete_auto_map` adds every sibling class of the model's module. Lives next to the
modeling files (no import of the package) because it is copied with them into every checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from transformers import BertConfig, PreTrainedModel

CARD_FILE = "README.md"
BERT_FIELDS = frozenset(field.name for field in dataclasses.fields(BertConfig))


def _qualified(cls: type) -> str:
    return f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}"


def complete_auto_map(model: PreTrainedModel) -> dict[str, str]:
    """`auto_map` naming the config and every registered model class defined beside `model`'s class."""
    module = sys.modules[type(model).__module__]
    auto_map = {"AutoConfig": _qualified(type(model.config))}
    for value in vars(module).values():
        if (
            isinstance(value, type) and issubclass(value, PreTrainedModel)
            and value.__module__ == module.__name__ and value._auto_class is not None
        ):
            auto_map[value._auto_class] = _qualified(value)
    return {**auto_map, **(getattr(model.config, "auto_map", None) or {})}


def method_settings(config) -> dict:
    """The config fields a method adds to BERT's, with their values."""
    return {field.name: getattr(config, field.name) for field in dataclasses.fields(config) if field.name not in BERT_FIELDS}


def model_card(config, architecture: str, method: str) -> str:
    """A short `README.md`: which method (`method`, one line), its settings, and how to load the folder."""
    auto_class = next((name for name, ref in (getattr(config, "auto_map", None) or {}).items() if ref.endswith(f".{architecture}")), "AutoModel")
    settings = "\n".join(f"| `{key}` | `{value!r}` |" for key, value in method_settings(config).items())
    return f"""---
library_name: transformers
tags:
- transformers_prune
- {config.model_type}
---

# `{config.model_type}`: {architecture}

{method}

A BERT ({config.num_hidden_layers} layers, hidden size {config.hidden_size}) saved by
[transformers_prune](https://pypi.org/project/transformers-prune/).

| setting | value |
|---|---|
{settings}

## Load

```python
from transformers import {auto_class}, AutoTokenizer

model = {auto_class}.from_pretrained("PATH_OR_REPO", trust_remote_code=True)  # the code files are in this folder
tokenizer = AutoTokenizer.from_pretrained("PATH_OR_REPO", trust_remote_code=True)
```

The tokenizer is BERT's own; `AutoTokenizer` still reads `config.json`, so without `trust_remote_code=True`
it asks whether to run this folder's code (or use `BertTokenizerFast.from_pretrained("PATH_OR_REPO")`).

With `pip install transformers-prune`, `import transformers_prune` first and drop `trust_remote_code`.
"""


def write_model_card(save_directory: str, config, model_class: type) -> None:
    """Write `README.md` unless the folder already has one (a user's card is never replaced). The method line is
    the first line of the model class's modeling-module docstring."""
    path = os.path.join(save_directory, CARD_FILE)
    if not os.path.exists(path):
        method = (sys.modules[model_class.__module__].__doc__ or "").strip().split("\n")[0]
        with open(path, "w", encoding="utf-8") as f:
            f.write(model_card(config, model_class.__name__, method))


def make_weights_readable(save_directory: str) -> None:
    """Give the weight files the permissions of every other file in the folder (what the umask allows):
    transformers 5.x writes them through a private temporary file, mode 0600, so a folder shared with other users
    or served read-only would have every file but the weights readable."""
    umask = os.umask(0)
    os.umask(umask)
    for name in os.listdir(save_directory):
        if name.endswith((".safetensors", ".safetensors.index.json")):
            os.chmod(os.path.join(save_directory, name), 0o666 & ~umask)


class HubCheckpointMixin:
    """`save_pretrained` (also behind `Trainer.save_model` and `push_to_hub`) plus what lets the folder load where
    this package is not installed: every Auto class of the model type in `auto_map` (HF copies the code files)
    and a model card, `README.md`, unless the folder has one."""

    def save_pretrained(self, save_directory, *args, **kwargs):
        self.config.auto_map = complete_auto_map(self)
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            make_weights_readable(save_directory)
            write_model_card(save_directory, self.config, type(self))


__all__ = ["HubCheckpointMixin", "complete_auto_map", "make_weights_readable", "method_settings", "model_card", "write_model_card"]
