"""Fitting a compressed form to a trained weight: truncated (Fisher-weighted) SVD, magnitude pruning, Kronecker
sums, Tucker (HOOI), and gradient refinement on the paper's loss."""

from __future__ import annotations

from __future__ import annotations
import dataclasses
import torch
from torch import nn
from tqdm.auto import tqdm
from .autoencoder import AutoencoderRecipe, reconstruction_loss
from ..data_files import read_labelled_rows
from ..models.modeling_compressed_bert import (
    KroneckerSumWeight,
    TuckerWeight,
)
from .layouts import blocked_tensor, unfold


TUCKER_HOOI_ITERATIONS = 10


REFINE_LEARNING_RATE = 1e-3


# FWSVD on MiniLM's word embeddings at ratio 3, SST-2 dev accuracy without fine-tuning: 256 sentences 86.6 (floor 0),
# 86.4 (0.1), 84.6 (1); 2,048 sentences 87.5 (0), 87.7 (0.1).
DEFAULT_FISHER_SAMPLES, DEFAULT_FISHER_FLOOR = 2048, 0.1


@dataclasses.dataclass
class FitSettings:
    """How the trained methods (ae; kronecker and tucker refinement) fit the weights."""

    autoencoder: AutoencoderRecipe = dataclasses.field(default_factory=AutoencoderRecipe)
    refine_steps: int = 0  # kronecker/tucker: full-matrix Adam steps after the closed-form fit
    refine_learning_rate: float = REFINE_LEARNING_RATE
    ae_grouping: str = "concatenated"
    device: str = "cpu"
    seed: int = 0


def low_rank_factors(weight: torch.Tensor, rank: int, row_weights: torch.Tensor | None = None):
    """(A [n x k], B [k x m]) with W ~ A B: truncated SVD, of diag(w) W when rows have weights w (FWSVD)."""
    matrix = weight.double() if row_weights is None else weight.double() * row_weights.double()[:, None]
    left, singular, right = torch.linalg.svd(matrix, full_matrices=False)
    first = left[:, :rank] * singular[:rank]
    if row_weights is not None:
        first = first / row_weights.double()[:, None]
    return first.to(weight.dtype), right[:rank].to(weight.dtype)


def magnitude_mask(weight: torch.Tensor, kept: int) -> torch.Tensor:
    """Bool mask keeping exactly the `kept` largest-magnitude weights (ties broken by position)."""
    mask = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
    mask[weight.abs().flatten().topk(kept).indices] = True
    return mask.view(weight.shape)


@torch.no_grad()
def fit_kronecker(factors: KroneckerSumWeight, weight: torch.Tensor) -> None:
    """Best Frobenius fit of the zero-padded weight (Van Loan and Pitsianis): rank-r SVD of its rearrangement."""
    (p, q), (rows, cols) = factors.factor_shape, weight.shape
    padded = weight.new_zeros(p * p, q * q, dtype=torch.float64)
    padded[:rows, :cols] = weight
    rearranged = padded.view(p, p, q, q).permute(0, 2, 1, 3).reshape(p * q, p * q)  # [(i1, j1), (i2, j2)]
    left, singular, right = torch.linalg.svd(rearranged, full_matrices=False)
    terms = factors.first_factors.shape[1]
    root = singular[:terms].sqrt()  # split each singular value evenly between A_j and B_j
    factors.first_factors.copy_(left[:, :terms] * root)
    factors.second_factors.copy_(root[:, None] * right[:terms])


def _mode_product(tensor: torch.Tensor, matrix: torch.Tensor, mode: int) -> torch.Tensor:
    """tensor x_mode matrix, matrix [new, tensor.shape[mode]]."""
    return torch.tensordot(matrix, tensor, dims=([1], [mode])).movedim(0, mode)


def _leading_left_singular_vectors(matrix: torch.Tensor, count: int) -> torch.Tensor:
    # Eigenvectors of the small Gram matrix: the unfoldings are short and very wide.
    _, vectors = torch.linalg.eigh(matrix @ matrix.T)
    return vectors[:, -count:].flip(-1)


@torch.no_grad()
def fit_tucker(factors: TuckerWeight, weight: torch.Tensor) -> None:
    """Tucker fit of the blocked weight by HOOI (higher-order orthogonal iteration) from the HOSVD."""
    tensor, ranks = blocked_tensor(weight, factors.row_factor.shape[0]), list(factors.core.shape)
    modes = [_leading_left_singular_vectors(unfold(tensor, mode), rank) for mode, rank in enumerate(ranks)]
    for _ in range(TUCKER_HOOI_ITERATIONS):
        for mode in range(3):
            projected = tensor
            for other in range(3):
                if other != mode:
                    projected = _mode_product(projected, modes[other].T, other)
            modes[mode] = _leading_left_singular_vectors(unfold(projected, mode), ranks[mode])
    core = tensor
    for mode in range(3):
        core = _mode_product(core, modes[mode].T, mode)
    for parameter, value in zip((factors.core, factors.block_factor, factors.row_factor, factors.column_factor), (core, *modes)):
        parameter.copy_(value)


def refine_factors(factors: nn.Module, weight: torch.Tensor, settings: FitSettings, name: str = "") -> None:
    """`settings.refine_steps` full-matrix Adam steps of `factors` (in place) on the paper's loss."""
    if settings.refine_steps <= 0:
        return
    device = torch.device(settings.device)
    target = weight.to(device, torch.float32)
    factors.to(device)
    optimizer = torch.optim.Adam(factors.parameters(), lr=settings.refine_learning_rate)
    progress = tqdm(range(settings.refine_steps), desc=f"refine {name}", unit="step")
    for _ in progress:
        loss = reconstruction_loss(factors(), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        progress.set_postfix(loss=f"{loss.item():.4f}")
    factors.cpu()


def fisher_row_weights(
    model, data_file: str, tokenizer, paths: list[str], max_samples: int, max_length: int, floor: float = DEFAULT_FISHER_FLOOR
) -> dict[str, torch.Tensor]:
    """Per module, sqrt of each row's summed empirical Fisher (squared task-loss gradients) over `data_file`, each
    row's Fisher raised to at least `floor` times the module's mean: a word embedding whose token the sample never
    contains has no gradient, and would otherwise be rebuilt with no regard to its error at all."""
    data = read_labelled_rows(data_file, "sentence", "label", max_samples)
    modules = {path: model.base_model.get_submodule(path) for path in paths}
    fisher = {path: torch.zeros_like(module.weight) for path, module in modules.items()}
    model.eval()
    for text, label in zip(data.texts, data.labels):
        model.zero_grad()
        inputs = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")
        model(**inputs, labels=torch.tensor([label])).loss.backward()
        for path, module in modules.items():
            fisher[path] += module.weight.grad.detach() ** 2
    weights = {}
    for path, values in fisher.items():
        importance = values.sum(dim=1) / len(data.labels)
        weights[path] = importance.clamp_min(floor * importance.mean()).sqrt().clamp_min(1e-12)
    return weights


__all__ = ["DEFAULT_FISHER_FLOOR", "DEFAULT_FISHER_SAMPLES", "FitSettings", "REFINE_LEARNING_RATE", "TUCKER_HOOI_ITERATIONS", "fisher_row_weights", "fit_kronecker", "fit_tucker", "low_rank_factors", "magnitude_mask", "refine_factors"]
