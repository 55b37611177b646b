"""One stock-`Trainer` fine-tuning run on labelled rows (`data_files.LabelledRows`), as `finetune` and `demo` do it.

Nothing here knows about pruning: the model's loss carries the method's auxiliary term, and the keep-ratio
callback that `import transformers_prune` installs logs kept fractions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields

import torch
from datasets import Dataset
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from ..data_files import LabelledRows, first_label_outside

# Columns a model reads besides the tokenizer's: AdapLeR's saliency targets (`transformers-prune saliency`),
# TR-BERT's imitation scores and teacher logits (`transformers-prune autobert-targets`).
MODEL_INPUT_COLUMNS = ("saliency", "residual_scores", "teacher_logits")
LOG_HISTORY_FILE = "log_history.json"


@dataclass
class TrainingSettings:
    epochs: float = 1.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    logging_steps: int = 50
    seed: int = 42

    @classmethod
    def from_arguments(cls, args) -> TrainingSettings:
        """The settings a command parsed (`transformers_prune_cli.common.add_training_arguments`); a field it has no option for keeps
        its default."""
        return cls(**{field.name: getattr(args, field.name) for field in fields(cls) if hasattr(args, field.name)})


def tokenize_for_training(rows: LabelledRows, tokenizer, max_length: int) -> Dataset:
    """`input_ids`, `attention_mask` (and `token_type_ids`), `labels` and any `MODEL_INPUT_COLUMNS` the rows carry."""
    columns = {"text": rows.texts, "labels": rows.labels}
    for name in MODEL_INPUT_COLUMNS:
        if name in rows.data.columns:
            columns[name] = [row[name] for row in rows.data.rows]
    dataset = Dataset.from_dict(columns)
    tokenized = dataset.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length), batched=True)
    return tokenized.remove_columns("text")


def train(model, tokenizer, train_dataset, output_dir: str, settings: TrainingSettings) -> list[dict]:
    """Stock `Trainer` run; saves model and tokenizer to `output_dir` (with `log_history.json`) and returns the
    log history."""
    training_args = TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        weight_decay=settings.weight_decay,
        logging_steps=settings.logging_steps,
        save_strategy="no",
        report_to="none",
        seed=settings.seed,
        use_cpu=not torch.cuda.is_available(),
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.save_model(output_dir)
    with open(os.path.join(output_dir, LOG_HISTORY_FILE), "w", encoding="utf-8") as f:
        json.dump(trainer.state.log_history, f, indent=1)
    return trainer.state.log_history


def has_classifier_head(config) -> bool:
    return any(name.endswith("ForSequenceClassification") for name in config.architectures or ())


def classifier_num_labels(config, rows: LabelledRows, allow_single_class: bool = False) -> int:
    """The classes to train: the checkpoint's classifier head's, else 0 to the largest label of the whole training
    file (at least 2: one output would make HF train a regression). Raises ValueError when a label has no class
    or, unless `allow_single_class`, when the rows used hold a single class."""
    if has_classifier_head(config):
        num_labels = config.num_labels
        problem = first_label_outside(rows, num_labels)
        if problem:
            raise ValueError(f"{problem}; start from a checkpoint without a classifier head to train other classes")
    else:
        num_labels = max(2, max(rows.file_labels) + 1)
    classes = sorted(set(rows.labels))
    if len(classes) == 1 and not allow_single_class:
        in_file = sorted(set(rows.file_labels))
        whole = (
            f" (the whole file has labels {in_file}: is it sorted by label? --shuffle-seed N draws rows at random)"
            if len(in_file) > 1 else ""
        )
        raise ValueError(
            f"{rows.path}: all {len(rows.labels)} training rows used have label {classes[0]}{whole}; "
            "a classifier needs two classes or more (--allow-single-class to train anyway)"
        )
    return num_labels


__all__ = ["MODEL_INPUT_COLUMNS", "TrainingSettings", "classifier_num_labels", "has_classifier_head", "tokenize_for_training", "train"]
