"""TR-BERT's training targets from a fine-tuned dense BERT (`transformers-prune autobert-targets` writes them):

- `residual_scores` (`[P, max_length]` per input, zero on padding): for the input h_k of each selection layer k and
  the output h_R of a later reference layer R, score_k(t) = |<dL/dh_R(t), h_R(t) - h_k(t)>| with L the gold
  target's cross-entropy: a first-order estimate of how much the loss changes if token t stops being updated after
  layer k, i.e. if it is dropped there (the original's `--do_eval_grad`). Stage "train_rl" imitates the top tokens
  by this score for the first `guide_rate` of its steps.
- teacher logits, the distillation targets of `train_teacher` (the original's `--do_eval_logits`): `teacher_logits`
  (`[num_labels]`) of a classifier, or `teacher_start_logits` / `teacher_end_logits` (`[max_length]`) of a span
  model, whose padding positions hold `PADDING_LOGIT` so that the teacher puts no probability there. The original
  keeps the dense model's logits at its padding positions (it pads every window to 384), which spreads the
  teacher's mass onto positions no answer can take; this is fixed here.

A span model's targets belong to the tokenised windows of a SQuAD file, so they are saved (`save_span_targets`) with
the windows' token ids and the windowing settings, and `attach_span_targets` refuses them for other windows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification

from ..folders import load_checkpoint_tokenizer, load_trained_head
from ..models.configuration_autobert import AutoBertConfig

# Teacher span logit at padding positions: softmax gives it no mass at any distillation temperature >= 1e-3, and it
# stays finite (a -inf would turn 0 * log-probability into NaN where a student logit is -inf too).
PADDING_LOGIT = -1e4
SPAN_TARGETS_KIND = "autobert-span-targets"


def resolve_layers(num_layers: int, selection_layers: list[int] | None, reference_layer: int | None) -> tuple[list[int], int]:
    """The selection layers (default: autobert's config rule) and the reference layer (default: the original's, the
    output of layer 9 of 12 for BERT-base, of layer 5 of 6 for DistilBERT), checked against each other."""
    selection_layers = selection_layers or AutoBertConfig(num_hidden_layers=num_layers).selection_layers
    reference_layer = reference_layer if reference_layer is not None else num_layers - num_layers // 4
    if not 0 < reference_layer <= num_layers:
        raise ValueError(f"reference layer {reference_layer} is invalid; allowed: 1 to {num_layers} (a layer's output)")
    late = [layer for layer in selection_layers if not 0 <= layer < reference_layer]
    if late:
        raise ValueError(f"selection layers {late} must be >= 0 and before the reference layer {reference_layer}")
    return selection_layers, reference_layer


def residual_scores(
    hidden_states: tuple[torch.Tensor, ...], loss: torch.Tensor, attention_mask: torch.Tensor,
    selection_layers: list[int], reference_layer: int,
) -> torch.Tensor:
    """`[B, P, S]` scores (0 on padding). `hidden_states[i]` is the input of layer i (`[0]` the embeddings); `loss`
    is summed over the batch, so each input's scores come from its own loss alone (inputs do not interact in BERT)."""
    reference = hidden_states[reference_layer]
    (gradient,) = torch.autograd.grad(loss, reference)
    scores = torch.stack(
        [(gradient * (reference - hidden_states[layer])).sum(dim=-1).abs() for layer in selection_layers], dim=1
    )
    return scores.detach() * attention_mask[:, None, :]


def residual_scores_and_logits(
    model, inputs: dict, labels: torch.Tensor, selection_layers: list[int], reference_layer: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A classifier's `[B, P, S]` residual scores and `[B, C]` logits."""
    outputs = model(**inputs, output_hidden_states=True)
    loss = F.cross_entropy(outputs.logits, labels, reduction="sum")
    scores = residual_scores(outputs.hidden_states, loss, inputs["attention_mask"], selection_layers, reference_layer)
    return scores, outputs.logits.detach()


def residual_scores_and_span_logits(
    model, inputs: dict, start_positions: torch.Tensor, end_positions: torch.Tensor,
    selection_layers: list[int], reference_layer: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A span model's `[B, P, S]` residual scores and `[B, S]` start and end logits (`PADDING_LOGIT` on padding).
    The loss is HF's span loss per input, (start + end cross-entropy) / 2, summed over the batch, over the real
    positions only: HF's loss also normalises over the padding, which would make an input's scores depend on the
    batch it was padded in."""
    outputs = model(**inputs, output_hidden_states=True)
    padding = inputs["attention_mask"] == 0
    start_logits, end_logits = (logits.masked_fill(padding, PADDING_LOGIT) for logits in (outputs.start_logits, outputs.end_logits))
    loss = (
        F.cross_entropy(start_logits, start_positions, reduction="sum") + F.cross_entropy(end_logits, end_positions, reduction="sum")
    ) / 2
    scores = residual_scores(outputs.hidden_states, loss, inputs["attention_mask"], selection_layers, reference_layer)
    return scores, start_logits.detach(), end_logits.detach()


@dataclass
class SpanTargets:
    """Targets of F windows padded to `max_length`: `input_ids` `[F, max_length]` (-1 on padding, to check that
    training tokenised the same windows), `residual_scores` `[F, P, max_length]`, `teacher_start_logits` and
    `teacher_end_logits` `[F, max_length]`; `settings` the windowing and layers they were computed with."""

    input_ids: torch.Tensor
    residual_scores: torch.Tensor
    teacher_start_logits: torch.Tensor
    teacher_end_logits: torch.Tensor
    settings: dict

    TENSORS = ("input_ids", "residual_scores", "teacher_start_logits", "teacher_end_logits")


def compute_span_targets(
    model, tokenizer, windows: dict[str, list], max_length: int, batch_size: int,
    selection_layers: list[int], reference_layer: int, settings: dict,
) -> SpanTargets:
    """Targets of the training windows `windows` (the columns of `benchmark.squad.training_windows`)."""
    count, device = len(windows["input_ids"]), next(model.parameters()).device
    input_ids = torch.full((count, max_length), -1, dtype=torch.long)
    scores = torch.zeros(count, len(selection_layers), max_length)
    start_logits = torch.full((count, max_length), PADDING_LOGIT)
    end_logits = torch.full((count, max_length), PADDING_LOGIT)
    model_inputs = [name for name in tokenizer.model_input_names if name in windows]
    for start in tqdm(range(0, count, batch_size), desc="autobert span targets"):
        end = min(start + batch_size, count)
        inputs = tokenizer.pad({name: windows[name][start:end] for name in model_inputs}, return_tensors="pt").to(device)
        positions = [torch.tensor(windows[name][start:end], device=device) for name in ("start_positions", "end_positions")]
        batch = residual_scores_and_span_logits(model, dict(inputs), *positions, selection_layers, reference_layer)
        length = inputs["input_ids"].shape[1]
        input_ids[start:end, :length] = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -1).cpu()
        scores[start:end, :, :length], start_logits[start:end, :length], end_logits[start:end, :length] = (t.cpu() for t in batch)
    return SpanTargets(input_ids, scores, start_logits, end_logits, settings)


def save_span_targets(targets: SpanTargets, file) -> None:
    """Write `targets` as safetensors (its settings in the metadata) into the open binary `file`."""
    tensors = {name: getattr(targets, name).contiguous() for name in SpanTargets.TENSORS}
    file.write(save(tensors, metadata={"kind": SPAN_TARGETS_KIND, "settings": json.dumps(targets.settings)}))


def attach_span_targets(windows: dict[str, list], path: str, max_length: int, doc_stride: int) -> dict[str, list]:
    """`windows` plus the columns `residual_scores`, `teacher_start_logits` and `teacher_end_logits` from the targets
    file `path`; ValueError unless the file's first windows are exactly these (a file of a SQuAD file's every
    question also serves a run on its first N: their windows come first, in the same order)."""
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
        if metadata.get("kind") != SPAN_TARGETS_KIND:
            raise ValueError(f"{path} is not a span targets file of `transformers-prune autobert-targets --squad-file`")
        settings = json.loads(metadata["settings"])
        tensors = {name: f.get_tensor(name) for name in SpanTargets.TENSORS}
    rerun = (f"{path} was computed with --max-length {settings['max_length']} --doc-stride {settings['doc_stride']} on "
             f"{settings['windows']} windows of {settings['squad_file']}; ")
    if (settings["max_length"], settings["doc_stride"]) != (max_length, doc_stride):
        raise ValueError(rerun + f"this run uses --max-length {max_length} --doc-stride {doc_stride}")
    if len(tensors["input_ids"]) < len(windows["input_ids"]):
        raise ValueError(rerun + f"this run has {len(windows['input_ids'])} windows (check --max-train-samples)")
    for index, ids in enumerate(windows["input_ids"]):
        if tensors["input_ids"][index, : len(ids)].tolist() != ids or (len(ids) < max_length and tensors["input_ids"][index, len(ids)] != -1):
            raise ValueError(rerun + f"window {index} of this run has other tokens (another file, order or tokenizer)")
    count = len(windows["input_ids"])
    columns = {name: tensors[name][:count].tolist() for name in ("residual_scores", "teacher_start_logits", "teacher_end_logits")}
    return {**windows, **columns}


def default_device() -> torch.device:
    """Where the targets are computed: the GPU when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def compute_targets(
    checkpoint: str,
    texts: list[str],
    labels: list[int],
    max_length: int,
    batch_size: int,
    selection_layers: list[int] | None = None,
    reference_layer: int | None = None,
    text_pairs: list[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[int], int]:
    """A classifier's `[num_examples, P, max_length]` scores, `[num_examples, C]` logits, and the layers used, for
    `texts` or for the pairs (`texts`, `text_pairs`), tokenised as run_glue.py tokenises them."""
    tokenizer = load_checkpoint_tokenizer(checkpoint)
    device = default_device()
    model = load_trained_head(AutoModelForSequenceClassification, checkpoint, "autobert-targets").to(device)
    num_labels = model.config.num_labels
    selection_layers, reference_layer = resolve_layers(model.config.num_hidden_layers, selection_layers, reference_layer)
    if max(labels) >= num_labels or min(labels) < 0:
        raise ValueError(f"{checkpoint} has {num_labels} labels but the data has labels in [{min(labels)}, {max(labels)}]")
    scores = torch.zeros(len(texts), len(selection_layers), max_length)
    logits = torch.zeros(len(texts), num_labels)
    for start in tqdm(range(0, len(texts), batch_size), desc="autobert targets"):
        pairs = None if text_pairs is None else text_pairs[start : start + batch_size]
        inputs = tokenizer(
            texts[start : start + batch_size], pairs, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
        ).to(device)
        batch_labels = torch.tensor(labels[start : start + batch_size], device=device)
        batch_scores, batch_logits = residual_scores_and_logits(model, dict(inputs), batch_labels, selection_layers, reference_layer)
        end = start + len(batch_labels)
        scores[start:end, :, : batch_scores.shape[2]] = batch_scores.cpu()
        logits[start:end] = batch_logits.cpu()
    return scores, logits, selection_layers, reference_layer


__all__ = [
    "PADDING_LOGIT",
    "SpanTargets",
    "attach_span_targets",
    "compute_span_targets",
    "compute_targets",
    "default_device",
    "residual_scores",
    "residual_scores_and_logits",
    "residual_scores_and_span_logits",
    "resolve_layers",
    "save_span_targets",
]
