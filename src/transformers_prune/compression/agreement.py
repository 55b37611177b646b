"""How closely a BERT with some weights replaced by their compressed approximations still computes what it did, on
real held-out sentences: the function measure of `compress`'s report and the autoencoder's stopping signal.

Two figures against the uncompressed model on the same sentences:
- `hidden_cosine`: the mean cosine between the base model's last hidden states, over real tokens (any head);
- `prediction_agreement`: the fraction of sentences whose predicted class is unchanged (sequence classifiers).

Weights are replaced in place for the duration of one scoring and restored after it, so one copy of the model
serves every candidate. A compressed module computes with its approximated weight exactly (x W^T + b), so this
scores the checkpoint that `compress` writes, module by module or all together.
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch

from ..data_files import check_columns, read_data_file

DEFAULT_HELDOUT_SAMPLES = 64
MAX_LENGTH = 128
BATCH_SIZE = 32


@dataclasses.dataclass
class HeldoutText:
    """Held-out sentences: `selection` picks the autoencoder's stopping step, `report` scores the report (disjoint)."""

    source: str
    selection: list[str]
    report: list[str]


def read_heldout_text(path: str, text_column: str, samples: int) -> HeldoutText:
    """The first `samples` sentences of `path` for selection and the next `samples` for the report."""
    data = read_data_file(path)
    check_columns(data, [text_column])
    cells = (row.get(text_column) for row in data.rows)
    sentences = [text for text in cells if isinstance(text, str) and text.strip()][: 2 * samples]
    if len(sentences) < 2 * samples:
        raise ValueError(f"--heldout-file {path} has {len(sentences)} sentences in {text_column!r}; {2 * samples} are needed (--heldout-samples {samples}, twice)")
    return HeldoutText(path, sentences[:samples], sentences[samples:])


class AgreementProbe:
    """The uncompressed model's outputs on fixed sentences, and `score` of the same model with weights replaced."""

    def __init__(self, model, tokenizer, sentences: list[str]):
        self.model = model.eval()
        self.batches = [
            tokenizer(sentences[start:start + BATCH_SIZE], truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
            for start in range(0, len(sentences), BATCH_SIZE)
        ]
        self.reference = self._outputs()

    @torch.no_grad()
    def _outputs(self) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Per batch: (last hidden states of the real tokens [N, H], the class predicted per sentence or None)."""
        results = []
        for batch in self.batches:
            out = self.model(**batch, output_hidden_states=True)
            real = batch["attention_mask"].bool()
            logits = getattr(out, "logits", None)
            predictions = logits.argmax(-1) if logits is not None and logits.dim() == 2 else None
            results.append((out.hidden_states[-1][real], predictions))
        return results

    def score(self, replacements: dict[str, torch.Tensor]) -> dict[str, float]:
        """{"hidden_cosine", and "prediction_agreement" for a classifier} with each module at path (inside the base
        model) computing with the weight given for it."""
        with replaced_weights(self.model.base_model, replacements):
            outputs = self._outputs()
        cosines = torch.cat([
            torch.nn.functional.cosine_similarity(hidden, reference, dim=-1) for (hidden, _), (reference, _) in zip(outputs, self.reference)
        ])
        result = {"hidden_cosine": float(cosines.mean())}
        if self.reference[0][1] is not None:
            same = torch.cat([ours == theirs for (_, ours), (_, theirs) in zip(outputs, self.reference)])
            result["prediction_agreement"] = float(same.float().mean())
        return result


@contextlib.contextmanager
def replaced_weights(base, replacements: dict[str, torch.Tensor]):
    """Each module at path in `base` computes with the given weight until the block ends; then the originals return."""
    originals = {}
    try:
        with torch.no_grad():
            for path, weight in replacements.items():
                parameter = base.get_submodule(path).weight
                originals[path] = parameter.detach().clone()
                parameter.copy_(weight.to(parameter.dtype))
        yield
    finally:
        with torch.no_grad():
            for path, weight in originals.items():
                base.get_submodule(path).weight.copy_(weight)


__all__ = ["DEFAULT_HELDOUT_SAMPLES", "AgreementProbe", "HeldoutText", "read_heldout_text", "replaced_weights"]
