"""A task's dev data as model inputs for one tokenizer: batches, per-input predictions, task metrics.

Both classes answer the same three questions, so the runner never branches on the task:
`batches(batch_size, pad_to_max_length)`, `predictions(outputs, batch)` and `score(predictions)`.
An "input" is one row of a batch: a sentence or review for classification, a context window for SQuAD.
"""

from __future__ import annotations

from .data import CLASSIFICATION, ClassificationData, SquadData, TaskSpec
from .squad import best_answers, feature_batches, prepare_features, squad_scores


def tokenized_batches(tokenizer, texts: list[str], batch_size: int, max_length: int) -> list[dict]:
    """Consecutive `[batch, seq_len]` batches, each padded to its own longest text (dynamic padding)."""
    return [
        dict(tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
        for i in range(0, len(texts), batch_size)
    ]


class ClassificationInputs:
    """Sentences (SST-2) or reviews (IMDB) truncated to `max_length`."""

    def __init__(self, tokenizer, data: ClassificationData, max_length: int):
        self.tokenizer = tokenizer
        self.data = data
        self.max_length = max_length

    @property
    def num_inputs(self) -> int:
        return len(self.data.texts)

    def batches(self, batch_size: int, pad_to_max_length: bool) -> list[dict]:
        """Consecutive batches of `[batch, seq_len]` tensors, padded to their longest text or to `max_length`."""
        batches = tokenized_batches(self.tokenizer, self.data.texts, batch_size, max_length=self.max_length)
        if not pad_to_max_length:
            return batches
        return [
            dict(self.tokenizer.pad(batch, padding="max_length", max_length=self.max_length, return_tensors="pt"))
            for batch in batches
        ]

    def predictions(self, outputs, batch: dict) -> list[int]:
        """Predicted class of each row; `outputs.logits` is `[batch, num_labels]`."""
        return outputs.logits.argmax(-1).tolist()

    def score(self, predictions: list[int]) -> dict[str, float]:
        correct = sum(prediction == label for prediction, label in zip(predictions, self.data.labels))
        return {"accuracy": correct / len(self.data.labels)}


class SquadInputs:
    """SQuAD questions as sliding-window features (see `squad.prepare_features`)."""

    def __init__(self, tokenizer, data: SquadData, max_length: int, stride: int):
        self.tokenizer = tokenizer
        self.data = data
        self.max_length = max_length
        self.features = prepare_features(tokenizer, data.examples, max_length, stride)

    @property
    def num_inputs(self) -> int:
        return len(self.features)

    def batches(self, batch_size: int, pad_to_max_length: bool) -> list[dict]:
        padding = "max_length" if pad_to_max_length else True
        return feature_batches(self.tokenizer, self.features, batch_size, padding, self.max_length)

    def predictions(self, outputs, batch: dict) -> list[tuple]:
        """Per row, `(start_logits, end_logits)` as numpy `[length]` over its real tokens (padding cut off)."""
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        start_logits, end_logits = outputs.start_logits.float().cpu().numpy(), outputs.end_logits.float().cpu().numpy()
        return [(start_logits[row, :length], end_logits[row, :length]) for row, length in enumerate(lengths)]

    def score(self, predictions: list[tuple]) -> dict[str, float]:
        answers = best_answers(predictions, self.features, self.data.examples)
        return squad_scores(answers, self.data.examples)


def task_inputs(task: TaskSpec, data, tokenizer, max_length: int, doc_stride: int) -> ClassificationInputs | SquadInputs:
    if task.kind == CLASSIFICATION:
        return ClassificationInputs(tokenizer, data, max_length)
    return SquadInputs(tokenizer, data, max_length, doc_stride)


__all__ = ["ClassificationInputs", "SquadInputs", "task_inputs", "tokenized_batches"]
