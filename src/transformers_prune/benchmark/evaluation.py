"""One counted pass of a model over its inputs: task metrics, FLOPs and tokens per layer (`evaluate`), on inputs
batched once per batch size on the device (`DeviceBatches`); `score_labelled_rows` for labelled sentences. Used by
the benchmark, `finetune` and the demo."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..batching import consecutive_batches, length_sorted_batches, token_budget_batches
from ..data_files import LabelledRows
from .data import ClassificationData
from .flops import flop_counter
from .inputs import ClassificationInputs


@dataclass(frozen=True)
class TokenBudget:
    """A batch size counted in real tokens: each batch holds as many inputs as fit `max_tokens`."""

    max_tokens: int

    def __str__(self) -> str:
        return f"{self.max_tokens} tokens"


class DeviceBatches:
    """A checkpoint's inputs on the benchmark device, batched once per batch size (a row count, or a `TokenBudget`).

    The inputs keep their order, or with `length_sorted` go longest first (so that each padded batch pads little:
    the cheapest trick a user of padded models knows). Padded to the longest input of each batch (dynamic
    padding), or to `max_length` for the HF padded baseline. `first`: batch only the first N inputs (every row of
    a run then times the same inputs).
    """

    def __init__(self, inputs, device: torch.device, pad_to_max_length: bool = False, length_sorted: bool = False):
        self.inputs = inputs
        self.device = device
        self.pad_to_max_length = pad_to_max_length
        self.length_sorted = length_sorted
        self._cache: dict[tuple, list[dict]] = {}

    def groups(self, size: int | TokenBudget, first: int | None = None) -> list[list[int]]:
        """The input indices of each batch."""
        lengths = self.inputs.lengths[:first]
        if isinstance(size, TokenBudget):
            return token_budget_batches(lengths, size.max_tokens, sort_by_length=self.length_sorted)
        return length_sorted_batches(lengths, size) if self.length_sorted else consecutive_batches(len(lengths), size)

    def order(self, size: int | TokenBudget) -> list[int]:
        """The input index of each row of `get(size)`, batch after batch."""
        return [index for group in self.groups(size) for index in group]

    def get(self, size: int | TokenBudget, first: int | None = None) -> list[dict]:
        if (size, first) not in self._cache:
            self._cache[size, first] = [
                {name: tensor.to(self.device) for name, tensor in self.inputs.batch(group, self.pad_to_max_length).items()}
                for group in self.groups(size, first)
            ]
        return self._cache[size, first]


def token_rows_per_layer(model, outputs, attention_mask: torch.Tensor, num_layers: int) -> torch.Tensor:
    """`[batch, num_layers]` token rows each layer computes per example.

    Our token-pruning models report `tokens_per_layer` (live tokens on the packed engine); a `compressed-bert`
    model on the packed engine computes every real token in every layer; HF BERT computes every position of the
    padded batch, padding included.
    """
    tokens_per_layer = getattr(outputs, "tokens_per_layer", None)
    if tokens_per_layer is not None:
        return tokens_per_layer
    runs_packed = getattr(getattr(model, "base_model", None), "runs_packed", None)  # None for ONNX Runtime rows
    if runs_packed is not None and runs_packed({}):
        return attention_mask.sum(dim=1, keepdim=True).expand(-1, num_layers)
    return attention_mask.new_full((attention_mask.shape[0], num_layers), attention_mask.shape[1])


@torch.inference_mode()
def evaluate(model, batches: list[dict], inputs, desc: str | None = None, order: list[int] | None = None) -> dict:
    """One pass over every input under `FlopCounterMode`; `order`: the input index of each row of `batches`, when
    they are not in input order (`DeviceBatches.order`).

    Returns the task metrics plus `flops_per_example` (per input), `tokens_per_layer`
    (`{"mean", "per_layer": [num_layers]}`, token rows per input) and `kept_fraction` (kept real tokens / real
    tokens, over layers; 1 for HF BERT, which keeps every real token).
    """
    model.eval()
    num_layers = model.config.num_hidden_layers
    predictions, rows_per_layer, kept, real = [], torch.zeros(num_layers, dtype=torch.float64), 0, 0
    with flop_counter() as counter:
        for batch in tqdm(batches, desc=desc, leave=False, disable=desc is None):
            outputs = model(**batch)
            predictions.extend(inputs.predictions(outputs, batch))
            rows = token_rows_per_layer(model, outputs, batch["attention_mask"], num_layers).cpu()  # [B, L]
            real_lengths = batch["attention_mask"].sum(dim=1).cpu()  # [B]
            rows_per_layer += rows.sum(dim=0)
            kept += torch.minimum(rows, real_lengths[:, None]).sum().item()
            real += real_lengths.sum().item() * num_layers
    num_inputs = inputs.num_inputs
    if order is not None:
        in_input_order = [None] * num_inputs
        for index, prediction in zip(order, predictions):
            in_input_order[index] = prediction
        predictions = in_input_order
    return {
        **inputs.score(predictions),
        "flops_per_example": counter.get_total_flops() / num_inputs,
        "tokens_per_layer": {
            "mean": rows_per_layer.sum().item() / (num_inputs * num_layers),
            "per_layer": (rows_per_layer / num_inputs).tolist(),
        },
        "kept_fraction": kept / real,
    }


def score_labelled_rows(model, tokenizer, rows: LabelledRows, max_length: int) -> dict:
    """Accuracy, FLOPs and kept fraction on `rows` (see `evaluate`), on CUDA when there is one."""
    dev = ClassificationData(rows.texts, rows.labels, rows.path, f"{len(rows.labels)} rows")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batches = DeviceBatches(ClassificationInputs(tokenizer, dev, max_length=max_length), device)
    return evaluate(model.to(device), batches.get(32), batches.inputs)


__all__ = ["DeviceBatches", "TokenBudget", "evaluate", "score_labelled_rows", "token_rows_per_layer"]
