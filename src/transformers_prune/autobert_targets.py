"""`transformers-prune autobert-targets`: TR-BERT's imitation scores and teacher logits from a fine-tuned BERT.

For each example of a text classification file, one forward and backward pass of the fine-tuned classifier
(eval mode) gives both inputs the later `autobert` stages read:

- `residual_scores` (`[P, max_length]`, zero-padded): for the input h_k of each selection layer k and the
  output h_R of a later reference layer R, score_k(t) = |<dL/dh_R(t), h_R(t) - h_k(t)>| with L the gold
  label's cross-entropy: a first-order estimate of how much the loss changes if token t stops being updated
  after layer k, i.e. if it is dropped there (the original's `--do_eval_grad`). Stage "train_rl" imitates
  the top tokens by this score for the first `guide_rate` of its steps.
- `teacher_logits` (`[num_labels]`): the classifier's logits, the distillation target of `train_teacher`
  (the original's `--do_eval_logits`).

They are precomputed into a file, not computed during training: one pass over the training rows costs about
one training step of the fine-tuned model per example, while computing them on the fly would hold a second
BERT in memory and repeat that cost for every epoch, every stage that reads them (train_rl for the scores,
train_both for the logits) and every alpha tried. The output is the input file as JSON lines with the two
columns added, which `transformers-prune finetune` (or any `Trainer` whose dataset keeps them) feeds to the
model.

    transformers-prune autobert-targets runs/bert --data-file train.jsonl --text-column text --max-length 512 \\
        --output-file runs/train_autobert.jsonl
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from .command_line import add_labelled_rows_arguments, positive_int
from .data_files import read_labelled_rows, write_rows_with_columns
from .folders import check_checkpoint_folder, check_output_path, staged_output_file
from .models.configuration_autobert import AutoBertConfig


def default_selection_layers(num_layers: int) -> list[int]:
    """The layers `autobert` selects on by default (its config's rule)."""
    return AutoBertConfig(num_hidden_layers=num_layers).selection_layers


def default_reference_layer(num_layers: int) -> int:
    """The original's reference layer: output of layer 9 of 12 for BERT-base, of layer 5 of 6 for DistilBERT."""
    return num_layers - num_layers // 4


def residual_scores_and_logits(
    model, inputs: dict, labels: torch.Tensor, selection_layers: list[int], reference_layer: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`[B, P, S]` residual scores (0 on padding) and `[B, C]` logits. The loss is summed over the batch, so
    each example's scores come from its own loss alone (examples do not interact in BERT)."""
    outputs = model(**inputs, output_hidden_states=True)
    hidden_states = outputs.hidden_states  # [0] embeddings, [i] the output of layer i - 1 = the input of layer i
    reference = hidden_states[reference_layer]
    loss = F.cross_entropy(outputs.logits, labels, reduction="sum")
    (gradient,) = torch.autograd.grad(loss, reference)
    scores = torch.stack(
        [(gradient * (reference - hidden_states[layer])).sum(dim=-1).abs() for layer in selection_layers], dim=1
    )
    return scores.detach() * inputs["attention_mask"][:, None, :], outputs.logits.detach()


def compute_targets(
    checkpoint: str,
    texts: list[str],
    labels: list[int],
    max_length: int,
    batch_size: int,
    selection_layers: list[int] | None = None,
    reference_layer: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[int], int]:
    """`[num_examples, P, max_length]` scores, `[num_examples, C]` logits, and the layers used."""
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).to(device).eval()
    num_layers, num_labels = model.config.num_hidden_layers, model.config.num_labels
    selection_layers = selection_layers or default_selection_layers(num_layers)
    reference_layer = reference_layer if reference_layer is not None else default_reference_layer(num_layers)
    if not 0 < reference_layer <= num_layers:
        raise ValueError(f"reference layer {reference_layer} is invalid; allowed: 1 to {num_layers} (a layer's output)")
    late = [layer for layer in selection_layers if not 0 <= layer < reference_layer]
    if late:
        raise ValueError(f"selection layers {late} must be >= 0 and before the reference layer {reference_layer}")
    if max(labels) >= num_labels or min(labels) < 0:
        raise ValueError(f"{checkpoint} has {num_labels} labels but the data has labels in [{min(labels)}, {max(labels)}]")
    scores = torch.zeros(len(texts), len(selection_layers), max_length)
    logits = torch.zeros(len(texts), num_labels)
    for start in tqdm(range(0, len(texts), batch_size), desc="autobert targets"):
        inputs = tokenizer(
            texts[start : start + batch_size], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        ).to(device)
        batch_labels = torch.tensor(labels[start : start + batch_size], device=device)
        batch_scores, batch_logits = residual_scores_and_logits(model, dict(inputs), batch_labels, selection_layers, reference_layer)
        end = start + len(batch_labels)
        scores[start:end, :, : batch_scores.shape[2]] = batch_scores.cpu()
        logits[start:end] = batch_logits.cpu()
    return scores, logits, selection_layers, reference_layer


def _rounded(values: list, digits: int = 4):
    if isinstance(values, list):
        return [_rounded(value, digits) for value in values]
    return float(f"{values:.{digits}g}")


def run(args: argparse.Namespace) -> str:
    check_checkpoint_folder(args.checkpoint, need_weights=True)
    check_output_path(args.output_file, args.overwrite, [args.data_file], is_folder=False)
    rows = read_labelled_rows(args.data_file, args.text_column, args.label_column, args.max_samples)
    started = time.perf_counter()
    scores, logits, layers, reference = compute_targets(
        args.checkpoint, rows.texts, rows.labels, args.max_length, args.batch_size, args.selection_layers, args.reference_layer
    )
    seconds = time.perf_counter() - started
    columns = {"residual_scores": _rounded(scores.tolist()), "teacher_logits": _rounded(logits.tolist(), 6)}
    with staged_output_file(args.output_file, args.overwrite, [args.data_file]) as f:
        write_rows_with_columns(f, rows.data.rows, columns)
    examples = len(rows.labels)
    print(
        f"{args.output_file}: residual scores at selection layers {layers} (reference layer {reference}) and teacher "
        f"logits of {examples} examples in {seconds:.0f} s ({1000 * seconds / examples:.1f} ms per example)"
    )
    return args.output_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="the fine-tuned BERT classifier folder autobert starts from")
    add_labelled_rows_arguments(parser, "JSON lines: the input rows plus `residual_scores` and `teacher_logits`")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument(
        "--selection-layers", type=int, nargs="+", default=None,
        help="0-based layers autobert selects on (default: its config's, [1, L // 2]); must match the model's",
    )
    parser.add_argument(
        "--reference-layer", type=int, default=None, help="1-based layer whose output is the reference (default L - L // 4)"
    )


__all__ = ["add_arguments", "compute_targets", "residual_scores_and_logits", "run"]
