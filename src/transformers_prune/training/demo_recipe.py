"""The demo's training recipe: MiniLM fine-tuned on SST-2 with the stock `Trainer` (the dense baseline), then LTP's
two stages from it at the LTP README's values (`final_token_threshold` 0.01, `lambda_threshold` 0.1, `temperature`
1e-3; soft stage lr 2e-5, hard stage lr 1e-5, batch 64), each on half the rows: the soft stage learns the
thresholds, the hard stage fine-tunes with tokens really dropped, as at inference."""

from __future__ import annotations

import dataclasses
import os

import torch
from transformers import AutoModelForSequenceClassification

from ..conversion import convert_bert_checkpoint
from ..quiet import quiet_transformers
from .fine_tuning import TrainingSettings, train

SST2_LABELS = ("negative", "positive")
LTP_SOFT_SETTINGS = {"masking_mode": "soft", "final_token_threshold": 0.01, "lambda_threshold": 0.1, "temperature": 1e-3}
LTP_LEARNING_RATES = {"soft": 2e-5, "hard": 1e-5}
LTP_BATCH_SIZE = 64
# Where the demo keeps its models inside its output folder: the two it reports, and LTP's intermediate stages.
DENSE_FOLDER, LTP_FOLDER, STAGES_FOLDER = "dense", "ltp", "stages"


def train_dense(model_dir: str, tokenizer, train_dataset, output_dir: str, settings: TrainingSettings, seed: int) -> str:
    """A fresh SST-2 head (labels negative / positive) on `model_dir`'s encoder, fine-tuned into `output_dir`."""
    torch.manual_seed(seed)
    with quiet_transformers():  # the fresh classifier head is expected here
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir, num_labels=len(SST2_LABELS), id2label=dict(enumerate(SST2_LABELS)),
            label2id={label: index for index, label in enumerate(SST2_LABELS)},
        )
    train(model, tokenizer, train_dataset, output_dir, settings)
    return output_dir


def train_ltp_stage(
    stage: str, source: str, tokenizer, train_dataset, folder: str, output_dir: str, settings: TrainingSettings, seed: int
) -> str:
    """LTP's `stage` ("soft" or "hard") from the checkpoint `source`: converted into `folder/ltp-<stage>-init`,
    trained into `output_dir` at the stage's learning rate and batch size."""
    overrides = LTP_SOFT_SETTINGS if stage == "soft" else {"masking_mode": "hard"}
    converted = convert_bert_checkpoint(source, "ltp", os.path.join(folder, f"ltp-{stage}-init"), seed=seed, **overrides)
    stage_settings = dataclasses.replace(settings, learning_rate=LTP_LEARNING_RATES[stage], batch_size=LTP_BATCH_SIZE)
    train(AutoModelForSequenceClassification.from_pretrained(converted), tokenizer, train_dataset, output_dir, stage_settings)
    return output_dir


__all__ = [
    "DENSE_FOLDER",
    "LTP_BATCH_SIZE",
    "LTP_FOLDER",
    "LTP_LEARNING_RATES",
    "LTP_SOFT_SETTINGS",
    "SST2_LABELS",
    "STAGES_FOLDER",
    "train_dense",
    "train_ltp_stage",
]
