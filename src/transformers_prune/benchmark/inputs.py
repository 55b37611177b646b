"""A task's dev data as model inputs for one tokenizer: batches, per-input predictions, task metrics.

Both classes answer the same questions, so the runner never branches on the task: `lengths` (real tokens per
input), `batch(indices, pad_to_max_length)` (those inputs as one padded batch), `predictions(outputs, batch)` and
`score(predictions)` (predictions in input order). An "input" is one row of a batch: a sentence or review for
classification, a context window for SQuAD. Which inputs share a batch is `evaluation.DeviceBatches`'s choice.
"""

from __future__ import annotations

from .data import CLASSIFICATION, ClassificationData, SquadData, TaskSpec
from .squad import best_answers, prepare_features, squad_scores


class _TokenizedInputs:
    """Inputs tokenized once (`encodings`: model input name -> one unpadded id list per input), padded per batch."""

    def __init__(self, tokenizer, encodings: dict[str, list[list[int]]], max_length: int):
        self.tokenizer = tokenizer
        self.encodings = encodings
        self.max_length = max_length

    @property
    def num_inputs(self) -> int:
        return len(self.encodings["input_ids"])

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.encodings["input_ids"]]

    def batch(self, indices: list[int], pad_to_max_length: bool) -> dict:
        """The inputs at `indices` as `[batch, seq_len]` tensors, padded to their longest or to `max_length`."""
        rows = {name: [values[i] for i in indices] for name, values in self.encodings.items()}
        padding = "max_length" if pad_to_max_length else True
        return dict(self.tokenizer.pad(rows, padding=padding, max_length=self.max_length if pad_to_max_length else None, return_tensors="pt"))


class ClassificationInputs(_TokenizedInputs):
    """Sentences (SST-2) or reviews (IMDB) truncated to `max_length`."""

    def __init__(self, tokenizer, data: ClassificationData, max_length: int):
        super().__init__(tokenizer, dict(tokenizer(data.texts, truncation=True, max_length=max_length)), max_length)
        self.data = data

    def predictions(self, outputs, batch: dict) -> list[int]:
        """Predicted class of each row; `outputs.logits` is `[batch, num_labels]`."""
        return outputs.logits.argmax(-1).tolist()

    def score(self, predictions: list[int]) -> dict[str, float]:
        correct = sum(prediction == label for prediction, label in zip(predictions, self.data.labels))
        return {"accuracy": correct / len(self.data.labels)}


class SquadInputs(_TokenizedInputs):
    """SQuAD questions as sliding-window features (see `squad.prepare_features`)."""

    def __init__(self, tokenizer, data: SquadData, max_length: int, stride: int):
        self.features = prepare_features(tokenizer, data.examples, max_length, stride)
        super().__init__(tokenizer, self.features.encodings, max_length)
        self.data = data

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


__all__ = ["ClassificationInputs", "SquadInputs", "task_inputs"]
