"""`transformers-prune compress`: offline weight compression of a trained BERT into a `compressed-bert` checkpoint.

Methods (Banaei et al., 2023, and the baselines they compare with):
- "svd": truncated SVD, W ~ U_k S_k V_k^T, rank floor(n m / (c (n + m))) for ratio c, or `--rank`.
- "fwsvd": Fisher-weighted SVD (Hsu et al., 2022): rows weighted by the task loss's summed squared gradients on a
  local `--data-file`.
- "pruning": magnitude pruning per matrix, stored sparsely: the kept weights plus a bit mask of where they sit
  (n m / 32 in 32-bit words), as many kept as fit n m / c with the mask.
- "ae": the paper's autoencoder. Its training data are the rows of the weight matrices; the encoder is thrown
  away, each row keeps a latent code, the decoder MLP (hidden widths 2x, 4x for latent size x) is kept, and each
  decoded row is rescaled to its original norm (stored). `--ae-grouping concatenated` (the paper's default)
  stacks one module type over the chosen layers and trains one decoder for the stack; `separated` trains one
  per matrix. Loss 0.9091 mean(1 - cos) + 0.0909 RMSE, Adam, batches of rows, StepLR(10 epochs, 0.8), as the
  paper; with `--data-file`, rows are weighted in the loss by their Fisher importance (as FWSVD's) on that data.
  The latent size is the largest whose codes + decoder + row norms fit n m / c, or `--rank`.
- "kronecker": W ~ sum_j A_j (x) B_j, factors ceil(sqrt(n)) x ceil(sqrt(m)); terms from the ratio or `--rank`.
- "tucker": W cut into blocks of head-size rows (hidden-size rows for the word embeddings, as the paper), the
  [blocks, block rows, m] tensor Tucker-factored. The paper applies it to Q/K/V and the word embeddings; other
  linears are cut the same way. Ranks grow greedily along the modes' singular values until core + factors fill
  n m / c (the paper sets them by hand), or `--tucker-ranks`.

Differences from the official code: SVD is exact (`torch.linalg.svd`), without the randomised solver's
perplexity-tuned iteration count. Kronecker and Tucker start from their closed-form Frobenius fits (SVD of the
Van Loan-Pitsianis rearrangement; HOOI) instead of a random init or tensorly, then optionally take
`--refine-steps` Adam steps on the paper's loss; Tucker ranks larger than a mode (the original's default 200 on a
64-row head) are refused rather than left to tensorly. No perplexity-based epoch selection: the last epoch is kept
(the data-free mode). Ratios count everything stored: the AE's row norms are included (the original leaves them
out of its reported ratio), biases are kept exactly and excluded, as in the paper.

    transformers-prune compress runs/bert runs/bert-ae10 --method ae --targets key output --ratio 10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import (
    AutoConfig,
    AutoTokenizer,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

from .command_line import add_overwrite_argument, positive_int
from .data_files import read_labelled_rows
from .folders import check_checkpoint_folder, check_output_path, copy_tokenizer_files, staged_output_folder
from .models.configuration_compressed_bert import CompressedBertConfig
from .models.modeling_compressed_bert import (
    AutoencoderWeight,
    CompressedBertForQuestionAnswering,
    CompressedBertForSequenceClassification,
    CompressedBertForTokenClassification,
    CompressedBertModel,
    KroneckerSumWeight,
    RowDecoder,
    SparseWeight,
    TuckerWeight,
    decode_rows,
    pack_bits,
)

METHODS = ("svd", "fwsvd", "pruning", "ae", "kronecker", "tucker")
AE_GROUPINGS = ("concatenated", "separated")
LAYER_TARGETS = {
    "query": "encoder.layer.{}.attention.self.query",
    "key": "encoder.layer.{}.attention.self.key",
    "value": "encoder.layer.{}.attention.self.value",
    "attention_output": "encoder.layer.{}.attention.output.dense",
    "intermediate": "encoder.layer.{}.intermediate.dense",
    "output": "encoder.layer.{}.output.dense",
}
TARGETS = (*LAYER_TARGETS, "word_embeddings")
# Source head -> (HF class to read it, our class to write it).
HEADS = {
    "ForSequenceClassification": (BertForSequenceClassification, CompressedBertForSequenceClassification),
    "ForQuestionAnswering": (BertForQuestionAnswering, CompressedBertForQuestionAnswering),
    "ForTokenClassification": (BertForTokenClassification, CompressedBertForTokenClassification),
}
REPORT_FILE = "compression_report.json"
# The paper's autoencoder: hidden widths as multiples of the latent size (config.yaml dec/enc_layer_sizes) and
# the loss weights (training.loss.cos_dist / l2_norm coeff).
DECODER_MULTIPLIERS = (2, 4)
ENCODER_MULTIPLIERS = (8, 4)
COSINE_LOSS_WEIGHT, RMSE_LOSS_WEIGHT = 0.9091, 0.0909
TUCKER_HOOI_ITERATIONS = 10


@dataclasses.dataclass
class FitSettings:
    """How the trained methods (ae; kronecker and tucker refinement) fit the weights."""

    epochs: int = 10  # ae: passes over the rows (the paper: 30)
    batch_size: int = 16  # ae: rows per step (the paper's)
    learning_rate: float = 1e-3
    refine_steps: int = 0  # kronecker/tucker: full-matrix Adam steps after the closed-form fit
    ae_grouping: str = "concatenated"
    device: str = "cpu"
    seed: int = 0


def module_paths(targets: list[str], layers: list[int] | None, num_layers: int) -> list[str]:
    """Paths inside the base model of the modules to compress; bad target names or layers raise ValueError."""
    return [path for paths in paths_by_target(targets, layers, num_layers).values() for path in paths]


def paths_by_target(targets: list[str], layers: list[int] | None, num_layers: int) -> dict[str, list[str]]:
    """Target name -> the paths of its modules in the chosen layers (word embeddings first)."""
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown or not targets:
        raise ValueError(f"unknown targets {unknown or targets}; choose from {list(TARGETS)}")
    layers = list(range(num_layers)) if layers is None else layers
    outside = [layer for layer in layers if not 0 <= layer < num_layers]
    if outside:
        raise ValueError(f"layers {outside} do not exist; the model has layers 0 to {num_layers - 1}")
    groups = {"word_embeddings": ["embeddings.word_embeddings"]} if "word_embeddings" in targets else {}
    for target in LAYER_TARGETS:
        if target in targets:
            groups[target] = [LAYER_TARGETS[target].format(layer) for layer in layers]
    return groups


# --- sizes -----------------------------------------------------------------------------------------------------


def rank_for_ratio(rows: int, cols: int, ratio: float) -> int:
    """The paper's rank for compression ratio `ratio` of a rows x cols matrix (at least 1)."""
    return max(1, math.floor(rows * cols / (ratio * (rows + cols))))


def decoder_hidden_sizes(latent_size: int) -> list[int]:
    return [multiplier * latent_size for multiplier in DECODER_MULTIPLIERS]


def decoder_parameter_count(latent_size: int, hidden_sizes: list[int], output_size: int) -> int:
    widths = [latent_size, *hidden_sizes, output_size]
    return sum((width_in + 1) * width_out for width_in, width_out in zip(widths[:-1], widths[1:]))


def autoencoder_latent_size(rows: int, cols: int, ratio: float) -> int:
    """Largest latent size x whose codes (rows x), row norms (rows) and decoder (x -> 2x -> 4x -> cols) fit
    rows cols / ratio; `rows` is the stacked row count when one decoder serves several matrices. The paper solves
    the same budget as a quadratic, with a spurious latent-bias term; this counts exactly."""
    budget = rows * cols / ratio

    def stored(x: int) -> int:
        return rows * x + rows + decoder_parameter_count(x, decoder_hidden_sizes(x), cols)

    if stored(1) > budget:
        raise ValueError(f"ratio {ratio} is too high for an autoencoder on {rows} x {cols}: latent size 1 already stores {stored(1)} > {budget:.0f}")
    latent = 1
    while stored(latent + 1) <= budget:
        latent += 1
    return latent


def kronecker_layout(rows: int, cols: int, ratio: float | None = None, terms: int | None = None) -> dict:
    """{"terms", "factor_shape"}: factors ceil(sqrt(rows)) x ceil(sqrt(cols)), as many terms as fit the ratio."""
    p, q = math.isqrt(rows - 1) + 1, math.isqrt(cols - 1) + 1
    if terms is None:
        terms = math.floor(rows * cols / (ratio * 2 * p * q))
        if terms < 1:
            raise ValueError(f"ratio {ratio} is too high for a Kronecker sum on {rows} x {cols}: one term stores {2 * p * q}")
        terms = min(terms, p * q)
    elif terms > p * q:
        raise ValueError(f"a Kronecker sum of {p} x {q} factors has at most {p * q} terms, got --rank {terms}")
    return {"terms": terms, "factor_shape": [p, q]}


def tucker_parameter_count(dims: list[int], ranks: list[int]) -> int:
    return math.prod(ranks) + sum(dim * rank for dim, rank in zip(dims, ranks))


def blocked_tensor(weight: torch.Tensor, block_rows: int) -> torch.Tensor:
    """The weight [rows, cols] zero-padded to whole blocks, as a float64 [blocks, block_rows, cols] tensor."""
    rows, cols = weight.shape
    blocks = math.ceil(rows / block_rows)
    padded = weight.new_zeros(blocks * block_rows, cols, dtype=torch.float64)
    padded[:rows] = weight
    return padded.view(blocks, block_rows, cols)


def tucker_ranks_for_budget(tensor: torch.Tensor, budget: float) -> list[int]:
    """Ranks grown one at a time from [1, 1, 1], each time in the mode whose next singular value squared (what
    the HOSVD error bound, the sum over modes of the discarded ones, loses) is largest per added parameter, while
    core + factors fit `budget`. Scaling all ranks alike would cut a 12-head mode to rank 1."""
    dims = list(tensor.shape)
    spectra = [torch.linalg.eigvalsh(_unfold(tensor, mode) @ _unfold(tensor, mode).T).flip(0).clamp_min(0) for mode in range(3)]
    ranks = [1, 1, 1]
    if tucker_parameter_count(dims, ranks) > budget:
        raise ValueError(f"the ratio is too high for a Tucker form of a {dims} tensor: ranks [1, 1, 1] store {tucker_parameter_count(dims, ranks)}")
    while True:
        best, best_gain = None, 0.0
        for mode in range(3):
            grown = [rank + (i == mode) for i, rank in enumerate(ranks)]
            if grown[mode] > dims[mode] or tucker_parameter_count(dims, grown) > budget:
                continue
            gain = float(spectra[mode][ranks[mode]]) / (tucker_parameter_count(dims, grown) - tucker_parameter_count(dims, ranks))
            if best is None or gain > best_gain:
                best, best_gain = grown, gain
        if best is None:
            return ranks
        ranks = best


def tucker_layout(weight: torch.Tensor, block_rows: int, ratio: float | None = None, ranks: list[int] | None = None) -> dict:
    rows, cols = weight.shape
    dims = [math.ceil(rows / block_rows), block_rows, cols]
    if ranks is None:
        ranks = tucker_ranks_for_budget(blocked_tensor(weight.detach(), block_rows), rows * cols / ratio)
    elif any(rank > dim for rank, dim in zip(ranks, dims)):
        raise ValueError(f"--tucker-ranks {list(ranks)} exceed the mode sizes {dims} of the {rows} x {cols} matrix in blocks of {block_rows} rows")
    return {"block_rows": block_rows, "ranks": list(ranks)}


# --- closed-form factorisations --------------------------------------------------------------------------------


def low_rank_factors(weight: torch.Tensor, rank: int, row_weights: torch.Tensor | None = None):
    """(A [n x k], B [k x m]) with W ~ A B: truncated SVD, of diag(w) W when rows have weights w (FWSVD)."""
    matrix = weight.double() if row_weights is None else weight.double() * row_weights.double()[:, None]
    left, singular, right = torch.linalg.svd(matrix, full_matrices=False)
    first = left[:, :rank] * singular[:rank]
    if row_weights is not None:
        first = first / row_weights.double()[:, None]
    return first.to(weight.dtype), right[:rank].to(weight.dtype)


def stored_count(tensor: torch.Tensor) -> int:
    """Numbers a tensor stores; a packed bit mask (uint8, 8 entries per byte) counts as its bits / 32, the size of
    that many 32-bit floats."""
    return math.ceil(tensor.numel() / 4) if tensor.dtype == torch.uint8 else tensor.numel()


def pruning_kept_count(rows: int, cols: int, ratio: float) -> int:
    """Weights a pruned [rows, cols] matrix keeps so that they and its bit mask fill rows cols / ratio numbers."""
    mask_bytes = math.ceil(rows * cols / 8)
    kept = math.floor(rows * cols / ratio) - math.ceil(mask_bytes / 4)
    if kept < 1:
        raise ValueError(
            f"pruning cannot reach ratio {ratio} on a {rows} x {cols} matrix: its bit mask alone takes 1/32 of it; "
            "use a ratio below 32"
        )
    return kept


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


def _unfold(tensor: torch.Tensor, mode: int) -> torch.Tensor:
    return tensor.movedim(mode, 0).reshape(tensor.shape[mode], -1)


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
    modes = [_leading_left_singular_vectors(_unfold(tensor, mode), rank) for mode, rank in enumerate(ranks)]
    for _ in range(TUCKER_HOOI_ITERATIONS):
        for mode in range(3):
            projected = tensor
            for other in range(3):
                if other != mode:
                    projected = _mode_product(projected, modes[other].T, other)
            modes[mode] = _leading_left_singular_vectors(_unfold(projected, mode), ranks[mode])
    core = tensor
    for mode in range(3):
        core = _mode_product(core, modes[mode].T, mode)
    for parameter, value in zip((factors.core, factors.block_factor, factors.row_factor, factors.column_factor), (core, *modes)):
        parameter.copy_(value)


# --- trained fits ----------------------------------------------------------------------------------------------


def reconstruction_loss(approximation: torch.Tensor, target: torch.Tensor, row_weights: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's loss, 0.9091 mean(1 - cos(row, target row)) + 0.0909 RMSE, rows optionally weighted (weights
    normalised to mean 1 over the batch, the original's per-batch "sum" normalisation)."""
    cosine_distance = 1 - torch.nn.functional.cosine_similarity(approximation, target, dim=-1)
    squared_error = (approximation - target).pow(2).mean(dim=-1)
    if row_weights is not None:
        row_weights = row_weights / row_weights.mean()
        cosine_distance, squared_error = cosine_distance * row_weights, squared_error * row_weights
    return COSINE_LOSS_WEIGHT * cosine_distance.mean() + RMSE_LOSS_WEIGHT * squared_error.mean().sqrt()


def autoencoder_encoder(cols: int, latent_size: int) -> nn.Sequential:
    """The paper's encoder (training only): Linear(m, 8x), LeakyReLU, Linear(8x, 4x), LeakyReLU, Linear(4x, x),
    LeakyReLU; its outputs become the stored codes."""
    widths = [cols, *(multiplier * latent_size for multiplier in ENCODER_MULTIPLIERS), latent_size]
    layers = []
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(width_in, width_out), nn.LeakyReLU()]
    return nn.Sequential(*layers)


def train_autoencoder(
    rows: torch.Tensor, decoder: RowDecoder, settings: FitSettings, row_weights: torch.Tensor | None = None, name: str = ""
) -> torch.Tensor:
    """Train `decoder` (in place) with a fresh encoder to reconstruct `rows` ([N, m]); returns the codes [N, k]."""
    device = torch.device(settings.device)
    rows = rows.to(device, torch.float32)
    row_norms = torch.linalg.vector_norm(rows, dim=1)
    row_weights = None if row_weights is None else row_weights.to(device, torch.float32)
    encoder = autoencoder_encoder(rows.shape[1], decoder.layers[0].in_features).to(device)
    decoder.to(device).train()
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=settings.learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.8)
    shuffler = torch.Generator().manual_seed(settings.seed)
    progress = tqdm(range(settings.epochs), desc=f"autoencoder {name} ({rows.shape[0]} rows)", unit="epoch")
    for _ in progress:
        losses = []
        for batch in torch.randperm(rows.shape[0], generator=shuffler).to(device).split(settings.batch_size):
            approximation = decode_rows(decoder, encoder(rows[batch]), row_norms[batch])
            loss = reconstruction_loss(approximation, rows[batch], None if row_weights is None else row_weights[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())  # read once per epoch: no host sync per step on CUDA
        scheduler.step()
        progress.set_postfix(loss=f"{torch.stack(losses).mean().item():.4f}")
    with torch.no_grad():
        codes = encoder(rows)
    decoder.cpu().eval()
    return codes.cpu()


def refine_factors(factors: nn.Module, weight: torch.Tensor, settings: FitSettings, name: str = "") -> None:
    """`settings.refine_steps` full-matrix Adam steps of `factors` (in place) on the paper's loss."""
    if settings.refine_steps <= 0:
        return
    device = torch.device(settings.device)
    target = weight.to(device, torch.float32)
    factors.to(device)
    optimizer = torch.optim.Adam(factors.parameters(), lr=settings.learning_rate)
    progress = tqdm(range(settings.refine_steps), desc=f"refine {name}", unit="step")
    for _ in progress:
        loss = reconstruction_loss(factors(), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        progress.set_postfix(loss=f"{loss.item():.4f}")
    factors.cpu()


# --- data-aware row weights ------------------------------------------------------------------------------------


def fisher_row_weights(model, data_file: str, tokenizer, paths: list[str], max_samples: int, max_length: int) -> dict[str, torch.Tensor]:
    """Per module, sqrt of each row's summed empirical Fisher (squared task-loss gradients) over `data_file`."""
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
    return {path: (values.sum(dim=1) / len(data.labels)).sqrt().clamp_min(1e-12) for path, values in fisher.items()}


# --- the command -----------------------------------------------------------------------------------------------


def check_options(method: str, ratio: float | None, rank: int | None, tucker_ranks: list[int] | None, data_file: str | None, settings: FitSettings) -> None:
    """ValueError (FileNotFoundError for a missing file) naming the bad option, before anything is read or written."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; available: {list(METHODS)}")
    if method == "tucker":
        if (ratio is None) == (tucker_ranks is None) or rank is not None:
            raise ValueError("give exactly one of --ratio and --tucker-ranks for tucker (it takes no --rank)")
        if len(tucker_ranks or [1, 1, 1]) != 3 or min(tucker_ranks or [1]) < 1:
            raise ValueError(f"--tucker-ranks needs three integers >= 1 (blocks, block rows, columns), got {tucker_ranks}")
    elif tucker_ranks is not None:
        raise ValueError(f"--tucker-ranks is for --method tucker, not {method}")
    elif (ratio is None) == (rank is None) or (method == "pruning" and ratio is None):
        raise ValueError("give exactly one of --ratio and --rank (pruning takes --ratio)")
    if ratio is not None and not ratio > 1:
        raise ValueError(f"ratio must be > 1, got {ratio}")
    if rank is not None and rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    if settings.ae_grouping not in AE_GROUPINGS:
        raise ValueError(f"unknown --ae-grouping {settings.ae_grouping!r}; available: {list(AE_GROUPINGS)}")
    if min(settings.epochs, settings.batch_size) < 1 or settings.refine_steps < 0 or not settings.learning_rate > 0:
        raise ValueError(f"--epochs and --batch-size must be >= 1, --refine-steps >= 0, --learning-rate > 0; got {settings}")
    if method == "fwsvd" and not (data_file and os.path.isfile(data_file)):
        raise FileNotFoundError(f"fwsvd needs --data-file, a local CSV/JSON of the task (got {data_file!r})")
    if data_file is not None and method not in ("fwsvd", "ae"):
        raise ValueError(f"--data-file is used by fwsvd and ae only, not by {method}")
    if data_file is not None and not os.path.isfile(data_file):
        raise FileNotFoundError(f"--data-file {data_file} does not exist")


def check_rank(base, groups: dict[str, list[str]], method: str, rank: int | None) -> None:
    """ValueError when an explicit `--rank` exceeds what a matrix can hold: a low-rank factorisation of an n x m
    matrix has rank <= min(n, m), an autoencoder's code per row at most the row's m entries."""
    if rank is None or method not in ("svd", "fwsvd", "ae"):
        return
    for target, paths in groups.items():
        rows, cols = base.get_submodule(paths[0]).weight.shape
        limit = cols if method == "ae" else min(rows, cols)
        if rank > limit:
            raise ValueError(
                f"--rank {rank} is too large for the {rows} x {cols} {target} matrices; {method} allows at most {limit}"
            )


# Method -> (its factors module, the closed-form fit that initialises it).
CLOSED_FORM_FITS = {"kronecker": (KroneckerSumWeight, fit_kronecker), "tucker": (TuckerWeight, fit_tucker)}


@dataclasses.dataclass
class Unit:
    """Matrices compressed together: one module, or (ae, concatenated) one module type across layers."""

    target: str
    paths: list[str]
    spec: dict
    decoder: dict | None = None  # ae: the decoder's layout, named spec["decoder"]


def plan_units(base, groups: dict[str, list[str]], method: str, ratio, rank, tucker_ranks, ae_grouping: str) -> list[Unit]:
    """Every unit with its resolved layout; sizes that cannot fit raise ValueError before any fitting."""
    head_size = base.config.hidden_size // base.config.num_attention_heads
    units = []
    for target, paths in groups.items():
        rows, cols = base.get_submodule(paths[0]).weight.shape
        if method == "ae":
            together = [paths] if ae_grouping == "concatenated" else [[path] for path in paths]
            for unit_paths in together:
                name = target if ae_grouping == "concatenated" else unit_paths[0].replace(".", "_")
                latent = rank or autoencoder_latent_size(rows * len(unit_paths), cols, ratio)
                decoder = {"latent_size": latent, "hidden_sizes": decoder_hidden_sizes(latent), "output_size": cols}
                units.append(Unit(target, unit_paths, {"kind": "autoencoder", "decoder": name, "latent_size": latent}, decoder))
            continue
        if method == "tucker":  # ranks follow each matrix's own spectra
            block_rows = cols if target == "word_embeddings" else head_size
            units += [Unit(target, [path], {"kind": "tucker", **tucker_layout(base.get_submodule(path).weight, block_rows, ratio, tucker_ranks)})
                      for path in paths]
            continue
        if method == "pruning":
            spec = {"kind": "pruned", "kept": pruning_kept_count(rows, cols, ratio)}
        elif method == "kronecker":
            spec = {"kind": "kronecker", **kronecker_layout(rows, cols, ratio, rank)}
        else:
            spec = {"kind": "low_rank", "rank": rank or rank_for_ratio(rows, cols, ratio)}
        units += [Unit(target, [path], spec) for path in paths]
    return units


def fit_unit(base, unit: Unit, method: str, ratio, row_weights: dict, settings: FitSettings) -> tuple[dict, dict]:
    """Compress one unit: (path -> {"state": tensors replacing the module's weight, keyed by their name inside
    the module; "approximation": the weight it now stands for; "stored": its parameter count}, decoder tensors)."""
    weights = [base.get_submodule(path).weight.detach() for path in unit.paths]
    results, decoder_state = {}, {}
    if method == "ae":
        decoder = RowDecoder(**unit.decoder)
        weighting = torch.cat([row_weights[path] for path in unit.paths]) if row_weights else None
        codes = train_autoencoder(torch.cat(weights), decoder, settings, weighting, unit.spec["decoder"])
        decoders = nn.ModuleDict({unit.spec["decoder"]: decoder})
        decoder_state = decoder.state_dict()
        for path, weight, part in zip(unit.paths, weights, codes.split([w.shape[0] for w in weights])):
            factors = AutoencoderWeight(*weight.shape, unit.spec["latent_size"], unit.spec["decoder"], decoders)
            with torch.no_grad():
                factors.codes.copy_(part)
                factors.row_norms.copy_(torch.linalg.vector_norm(weight, dim=1))
            results[path] = _factored_result(factors)
        return results, decoder_state
    (path,), (weight,) = unit.paths, weights
    if method == "pruning":
        mask = magnitude_mask(weight, unit.spec["kept"])
        factors = SparseWeight(*weight.shape, unit.spec["kept"])
        with torch.no_grad():
            factors.values.copy_(weight[mask])
            factors.mask_bits.copy_(pack_bits(mask))
        results[path] = _factored_result(factors)
    elif method in CLOSED_FORM_FITS:
        factors_class, fit = CLOSED_FORM_FITS[method]
        factors = factors_class(*weight.shape, **{key: value for key, value in unit.spec.items() if key != "kind"})
        fit(factors, weight)
        refine_factors(factors, weight, settings, path)
        results[path] = _factored_result(factors)
    else:
        first, second = low_rank_factors(weight, unit.spec["rank"], row_weights.get(path))
        if unit.target == "word_embeddings":
            state = {"codes.weight": first, "up.weight": second.T.contiguous()}
        else:
            state = {"down.weight": second.contiguous(), "up.weight": first}
        results[path] = {"state": state, "approximation": first @ second, "stored": first.numel() + second.numel()}
    return results, decoder_state


def _factored_result(factors: nn.Module) -> dict:
    state = {f"factors.{name}": tensor for name, tensor in factors.state_dict().items()}
    with torch.no_grad():
        approximation = factors()
    return {"state": state, "approximation": approximation, "stored": sum(stored_count(t) for t in state.values())}


def compress_checkpoint(
    source: str,
    output_dir: str,
    method: str,
    targets: list[str],
    layers: list[int] | None = None,
    ratio: float | None = None,
    rank: int | None = None,
    data_file: str | None = None,
    fisher_samples: int = 256,
    tucker_ranks: list[int] | None = None,
    settings: FitSettings | None = None,
    overwrite: bool = False,
) -> dict:
    """Write `output_dir`, the `compressed-bert` form of the BERT checkpoint `source`; returns the report.

    `rank` is the explicit size of svd/fwsvd (rank), ae (latent size) and kronecker (terms); `tucker_ranks` that
    of tucker; otherwise every size follows from `ratio`. `data_file` gives fwsvd its Fisher weights (required)
    and ae its row weights in the loss (optional), from the first `fisher_samples` rows. `output_dir` is written
    whole at the end; it may not be the source, and an existing non-empty one is replaced only with `overwrite`.
    """
    settings = settings or FitSettings()
    check_options(method, ratio, rank, tucker_ranks, data_file, settings)
    check_checkpoint_folder(source, need_weights=True)
    inputs = [source, *([data_file] if data_file else [])]
    check_output_path(output_dir, overwrite, inputs)
    source_config = AutoConfig.from_pretrained(source)
    if source_config.model_type != "bert":
        raise ValueError(f"{source} holds a {source_config.model_type!r} checkpoint; compress needs a 'bert' one")
    architecture = (source_config.architectures or ["BertModel"])[0]
    read_class, write_class = next(
        (classes for suffix, classes in HEADS.items() if architecture.endswith(suffix)), (BertModel, CompressedBertModel)
    )
    groups = paths_by_target(targets, layers, source_config.num_hidden_layers)
    model = read_class.from_pretrained(source)
    check_rank(model.base_model, groups, method, rank)
    units = plan_units(model.base_model, groups, method, ratio, rank, tucker_ranks, settings.ae_grouping)
    paths = [path for unit in units for path in unit.paths]
    row_weights = (
        fisher_row_weights(model, data_file, AutoTokenizer.from_pretrained(source), paths, fisher_samples, 128)
        if data_file else {}
    )

    torch.manual_seed(settings.seed)
    prefix = f"{model.base_model_prefix}." if model.base_model is not model else ""
    state = model.state_dict()
    specs, decoder_specs, modules_report, decoders_report = {}, {}, {}, {}
    for unit in units:
        results, decoder_state = fit_unit(model.base_model, unit, method, ratio, row_weights, settings)
        if unit.decoder is not None:
            name = unit.spec["decoder"]
            decoder_specs[name] = unit.decoder
            state.update({f"{prefix}compressed_decoders.{name}.{key}": tensor for key, tensor in decoder_state.items()})
            decoders_report[name] = {"target": unit.target, "modules": unit.paths, "params": sum(t.numel() for t in decoder_state.values())}
        for path, result in results.items():
            key, weight = f"{prefix}{path}", state.pop(f"{prefix}{path}.weight")
            state.update({f"{key}.{name}": tensor for name, tensor in result["state"].items()})
            if "up.weight" in result["state"] and f"{key}.bias" in state:  # a low-rank linear's bias sits on `up`
                state[f"{key}.up.bias"] = state.pop(f"{key}.bias")
            specs[path] = unit.spec
            modules_report[path] = _module_report(unit, weight, result, decoders_report)

    config = CompressedBertConfig(
        **{k: v for k, v in source_config.to_dict().items() if k not in ("model_type", "transformers_version", "architectures")},
        compression_method=method, compressed_modules=specs, compressed_decoders=decoder_specs or None,
    )
    compressed = write_class(config)
    compressed.load_state_dict(state, strict=True)
    report = _report(model, compressed, modules_report, decoders_report, groups, method)
    with staged_output_folder(output_dir, overwrite, inputs) as staged:
        compressed.save_pretrained(staged)
        copy_tokenizer_files(source, staged)
        with open(os.path.join(staged, REPORT_FILE), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return report


def _module_report(unit: Unit, weight: torch.Tensor, result: dict, decoders: dict) -> dict:
    rows, cols = weight.shape
    approximation = result["approximation"].to(weight.dtype)
    entry = {
        **unit.spec, "shape": [rows, cols], "params_before": rows * cols, "params_after": result["stored"],
        "relative_error": float(torch.linalg.norm(weight - approximation) / torch.linalg.norm(weight)),
        "mean_cosine_distance": float(1 - torch.nn.functional.cosine_similarity(approximation, weight, dim=1).mean()),
    }
    shared = 0.0
    if unit.decoder is not None:  # the decoder is stored once; each module it serves carries an equal share
        decoder = decoders[unit.spec["decoder"]]
        shared = decoder["params"] / len(decoder["modules"])
        entry["decoder_params_share"] = shared
    entry["ratio"] = rows * cols / (result["stored"] + shared)
    return entry


def _stored_count(model) -> int:
    """Everything the checkpoint stores: parameters, and the buffers that carry information (the autoencoder's row
    norms, the pruning bit masks)."""
    return sum(stored_count(tensor) for tensor in model.state_dict().values())


def _report(original, compressed, modules: dict, decoders: dict, groups: dict[str, list[str]], method: str) -> dict:
    decoder_params = sum(decoder["params"] for decoder in decoders.values())
    before = sum(m["params_before"] for m in modules.values())
    after = sum(m["params_after"] for m in modules.values()) + decoder_params
    by_target = {}
    for target, paths in groups.items():
        target_before = sum(modules[path]["params_before"] for path in paths)
        target_after = sum(modules[path]["params_after"] for path in paths) + sum(
            decoder["params"] for decoder in decoders.values() if decoder["target"] == target
        )
        by_target[target] = {"params_before": target_before, "params_after": target_after, "ratio": target_before / target_after}
    model_after = _stored_count(compressed)
    model_before = _stored_count(original)
    return {
        "method": method,
        "counting": (
            "stored numbers: factors, codes, decoders (once per decoder; each module's report carries its share), "
            "autoencoder row norms (buffers), pruned matrices' kept weights plus their bit masks (32 mask bits count "
            "as one number); biases kept exactly, counted in the model totals only"
        ),
        "modules": modules,
        "decoders": decoders,
        "targets": by_target,
        "compressed_modules": {"params_before": before, "params_after": after, "ratio": before / after},
        "model": {"params_before": model_before, "params_after": model_after, "ratio": model_before / model_after},
    }


def run(args: argparse.Namespace) -> dict:
    settings = FitSettings(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, refine_steps=args.refine_steps,
        ae_grouping=args.ae_grouping, device=args.device, seed=args.seed,
    )
    report = compress_checkpoint(
        args.source, args.output_dir, args.method, args.targets, args.layers, args.ratio, args.rank, args.data_file,
        args.fisher_samples, args.tucker_ranks, settings, args.overwrite,
    )
    for path, module in report["modules"].items():
        print(
            f"{path}: {module['params_before']} -> {module['params_after']} params"
            + (f" + {module['decoder_params_share']:.0f} decoder share" if "decoder_params_share" in module else "")
            + f" ({module['ratio']:.2f}x), relative error {module['relative_error']:.4f}"
        )
    for name, decoder in report["decoders"].items():
        print(f"decoder {name}: {decoder['params']} params, shared by {len(decoder['modules'])} modules")
    for target, figures in report["targets"].items():
        print(f"{target}: {figures['params_before']} -> {figures['params_after']} params ({figures['ratio']:.2f}x)")
    for scope in ("compressed_modules", "model"):
        figures = report[scope]
        print(f"{scope}: {figures['params_before']} -> {figures['params_after']} params ({figures['ratio']:.2f}x)")
    print(f"report: {os.path.join(args.output_dir, REPORT_FILE)}")
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = FitSettings()
    parser.add_argument("source", help="BERT checkpoint folder (any head, or a plain BertModel)")
    parser.add_argument("output_dir")
    add_overwrite_argument(parser)
    parser.add_argument("--method", required=True, help=f"one of {', '.join(METHODS)}")
    parser.add_argument("--targets", nargs="+", required=True, help=f"any of {', '.join(TARGETS)}")
    parser.add_argument("--layers", type=int, nargs="+", help="layer indices (default: all)")
    parser.add_argument("--ratio", type=float, help="target compression ratio of each matrix (> 1)")
    parser.add_argument("--rank", type=int, help="explicit size instead of --ratio: svd/fwsvd rank, ae latent size, kronecker terms")
    parser.add_argument("--tucker-ranks", type=int, nargs=3, metavar=("BLOCKS", "BLOCK_ROWS", "COLUMNS"),
                        help="explicit Tucker ranks instead of --ratio")
    parser.add_argument("--data-file", help="local CSV/JSON (sentence,label): fwsvd's Fisher weights (required), ae's row weights (optional)")
    parser.add_argument("--fisher-samples", type=positive_int, default=256, help="rows of --data-file used for the Fisher (default 256)")
    parser.add_argument("--ae-grouping", choices=AE_GROUPINGS, default=defaults.ae_grouping,
                        help="ae: one decoder per module type across layers (concatenated, the paper's default) or per matrix")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help=f"ae: passes over the rows (default {defaults.epochs}; the paper: 30)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help=f"ae: rows per step (default {defaults.batch_size})")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="Adam learning rate of ae and refinement (default 1e-3)")
    parser.add_argument("--refine-steps", type=int, default=defaults.refine_steps,
                        help="kronecker/tucker: Adam steps on the paper's loss after the closed-form fit (default 0)")
    parser.add_argument("--device", default=defaults.device, help="where ae training and refinement run: cpu (default), cuda, cuda:1")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of initialisation and row shuffling (default 0)")


__all__ = [
    "METHODS", "TARGETS", "FitSettings", "add_arguments", "autoencoder_latent_size", "compress_checkpoint",
    "kronecker_layout", "low_rank_factors", "rank_for_ratio", "run", "tucker_layout",
]
