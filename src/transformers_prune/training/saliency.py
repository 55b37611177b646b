"""AdapLeR's saliency targets (the original's `store_saliencies.py`): for each example, the saliency of token t is
the L2 norm over the hidden size of (d z_y / d e_t) * e_t, gradient x input at the embedding layer's output e for
the gold label's logit z_y, from fine-tuned classifiers in eval mode, averaged over them. For a regression model
(one label, e.g. STS-B) z_y is its one output: the original covers classification only, and the norm makes the
output's sign irrelevant. Sentence pairs are tokenised as pairs, the way run_glue.py does.
`transformers-prune saliency` writes them as a column that `adapler-bert` trains on."""

from __future__ import annotations

import os

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification

from ..folders import load_checkpoint_tokenizer, load_trained_head


def token_saliency(model, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
    """`[B, S]` gradient-x-input L2 saliency at the embedding output for each example's gold-label logit (a
    regression model's one output; `labels` unused then); 0 on padding. Examples do not interact in BERT, so one
    backward pass of the summed gold logits serves the batch."""
    captured = {}

    def keep_output(module, args, output):
        captured["embeddings"] = output

    handle = model.base_model.embeddings.register_forward_hook(keep_output)
    try:
        logits = model(**inputs).logits
    finally:
        handle.remove()
    gold_logits = (logits[:, 0] if model.config.num_labels == 1 else logits.gather(1, labels[:, None])).sum()
    (gradient,) = torch.autograd.grad(gold_logits, captured["embeddings"])
    return (gradient * captured["embeddings"]).norm(dim=-1).detach() * inputs["attention_mask"]


def compute_saliencies(
    checkpoints: list[str], texts: list[str], labels: list[int] | list[float], max_length: int, batch_size: int,
    text_pairs: list[str] | None = None,
) -> torch.Tensor:
    """`[num_examples, max_length]` saliencies averaged over `checkpoints` (all with the first one's tokenizer), of
    `texts` or of the pairs (`texts`, `text_pairs`)."""
    tokenizer = load_checkpoint_tokenizer(checkpoints[0])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    total = torch.zeros(len(texts), max_length)
    for checkpoint in checkpoints:
        model = load_trained_head(AutoModelForSequenceClassification, checkpoint, "saliency").to(device)
        regression = model.config.num_labels == 1
        if regression != all(isinstance(label, float) for label in labels):
            kind = "a regression model (one label)" if regression else f"a classifier of {model.config.num_labels} labels"
            given = "class ids" if regression else "real numbers"
            raise ValueError(f"{checkpoint} is {kind} but the labels are {given}: the checkpoints must all be of one kind")
        if not regression and max(labels) >= model.config.num_labels:
            raise ValueError(f"{checkpoint} has {model.config.num_labels} labels but the data has label {max(labels)}")
        for start in tqdm(range(0, len(texts), batch_size), desc=f"saliency {os.path.basename(checkpoint)}"):
            end = start + batch_size
            pairs = None if text_pairs is None else text_pairs[start:end]
            inputs = tokenizer(
                texts[start:end], pairs, truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            ).to(device)
            batch_labels = torch.tensor(labels[start:end], device=device)  # unused by a regression model
            saliency = token_saliency(model, dict(inputs), batch_labels).cpu()
            total[start : start + len(saliency), : saliency.shape[1]] += saliency
    return total / len(checkpoints)


__all__ = ["compute_saliencies", "token_saliency"]
