"""`transformers-prune compress`: offline weight compression of a trained BERT into a `compressed-bert` checkpoint.

Methods (Banaei et al., 2023, and the baselines they compare with), one for all targets (`--method svd`) or one per
target (`--method key=ae,output=svd,word_embeddings=ae`):
- "svd": truncated SVD, W ~ U_k S_k V_k^T, rank floor(n m / (c (n + m))) for ratio c, or `--rank`.
- "fwsvd": Fisher-weighted SVD (Hsu et al., 2022): rows weighted by the task loss's summed squared gradients on a
  local `--data-file`, each row's importance floored at `--fisher-floor` times the mean (rows the sample never
  reaches, such as most word embeddings, would otherwise get no weight at all). Needs a sequence classifier.
- "pruning": magnitude pruning per matrix, stored sparsely: the kept weights plus a bit mask of where they sit
  (n m / 32 in 32-bit words), as many kept as fit n m / c with the mask.
- "ae": the paper's autoencoder. Its training data are the rows of the weight matrices; each row keeps a latent
  code, the decoder MLP (hidden widths 2x, 4x for latent size x) is kept, and each decoded row is rescaled to a
  stored length. `--ae-grouping concatenated` (the paper's default) stacks one module type over the chosen layers
  and trains one decoder for the stack; `separated` trains one per matrix. Trained in optimizer steps by one of
  two recipes (see `compress_autoencoder`): "autodecoder" (default: codes trained directly from the SVD, large
  batches, Adam with warm-up and cosine decay, least-squares row lengths) or "paper" (encoder, batches of 16, StepLR, norms).
  The stopping step is the one whose model agrees best with the uncompressed one on held-out sentences
  (`--heldout-file`; the paper uses MLM perplexity). With `--data-file`, rows are weighted in the loss by their
  Fisher importance (as FWSVD's). The latent size is the largest whose codes + decoder + row lengths fit n m / c,
  or `--rank`.
- "kronecker": W ~ sum_j A_j (x) B_j, factors ceil(sqrt(n)) x ceil(sqrt(m)); terms from the ratio or `--rank`.
- "tucker": W cut into blocks of head-size rows (hidden-size rows for the word embeddings, as the paper), the
  [blocks, block rows, m] tensor Tucker-factored. The paper applies it to Q/K/V and the word embeddings; other
  linears are cut the same way. Ranks: of all that fit n m / c, those with the smallest HOSVD error bound (the
  paper sets them by hand), or `--tucker-ranks`.

Differences from the official code: SVD is exact (`torch.linalg.svd`), without the randomised solver's
perplexity-tuned iteration count. Kronecker and Tucker start from their closed-form Frobenius fits (SVD of the
Van Loan-Pitsianis rearrangement; HOOI) instead of a random init or tensorly, then optionally take
`--refine-steps` Adam steps on the paper's loss; Tucker ranks larger than a mode (the original's default 200 on a
64-row head) are refused rather than left to tensorly. Ratios count everything stored: the AE's row lengths are
included (the original leaves its norms out of its reported ratio), biases are kept exactly and excluded, as in the
paper.

The report (`compression_report.json`) gives per module, per target and for the model: parameters before and
after, ratio, relative Frobenius error, mean row cosine, which forward inference runs (dense or factorised) and its
multiply-adds per token; per target also the function measure with only that target compressed (agreement with the
uncompressed model on held-out sentences, see `compress_agreement`), and the SVD baselines at the same size:
per-matrix SVD, the same with each row rescaled to its true norm (what a norm-keeping method is up against), and
one SVD basis shared by the stacked layers (what sharing across layers buys a linear method).

    transformers-prune compress runs/bert runs/bert-ae10 --method ae --targets key output --ratio 10
    transformers-prune compress runs/bert runs/bert-mixed --method key=ae,output=pruning,word_embeddings=ae --ratio 3
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
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

from .compress_agreement import DEFAULT_HELDOUT_SAMPLES, AgreementProbe, HeldoutText, read_heldout_text
from .compress_autoencoder import AE_RECIPES, ROW_SCALES, AutoencoderRecipe, reconstruction_loss, train_autoencoder
from .command_line import add_overwrite_argument, positive_int
from .data_files import read_labelled_rows
from .folders import check_checkpoint_folder, check_output_path, copy_tokenizer_files, load_checkpoint_tokenizer, staged_output_folder
from .models.configuration_compressed_bert import CompressedBertConfig
from .models.modeling_compressed_bert import (
    AutoencoderWeight,
    CompressedBertForQuestionAnswering,
    CompressedBertForSequenceClassification,
    CompressedBertForTokenClassification,
    CompressedBertModel,
    FactoredLinear,
    KroneckerSumWeight,
    LowRankEmbedding,
    LowRankLinear,
    RowDecoder,
    SparseWeight,
    TuckerWeight,
    pack_bits,
)
from .resources import bundled_file

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
# The paper's decoder hidden widths as multiples of the latent size (config.yaml dec_layer_sizes).
DECODER_MULTIPLIERS = (2, 4)
TUCKER_HOOI_ITERATIONS = 10
REFINE_LEARNING_RATE = 1e-3
# FWSVD on MiniLM's word embeddings at ratio 3, SST-2 dev accuracy without fine-tuning: 256 sentences 86.6 (floor 0),
# 86.4 (0.1), 84.6 (1); 2,048 sentences 87.5 (0), 87.7 (0.1).
DEFAULT_FISHER_SAMPLES, DEFAULT_FISHER_FLOOR = 2048, 0.1
DEFAULT_HELDOUT_FILE = bundled_file("sst2_train_8k.csv")


@dataclasses.dataclass
class FitSettings:
    """How the trained methods (ae; kronecker and tucker refinement) fit the weights."""

    autoencoder: AutoencoderRecipe = dataclasses.field(default_factory=AutoencoderRecipe)
    refine_steps: int = 0  # kronecker/tucker: full-matrix Adam steps after the closed-form fit
    refine_learning_rate: float = REFINE_LEARNING_RATE
    ae_grouping: str = "concatenated"
    device: str = "cpu"
    seed: int = 0


def resolve_methods(method: str | dict[str, str], targets: list[str] | None) -> dict[str, str]:
    """Target -> method from `--method svd --targets key output` or `--method key=ae,output=svd` (targets implied);
    unknown names are left to `check_options` and `paths_by_target`."""
    if isinstance(method, str) and "=" not in method:
        if not targets:
            raise ValueError(f"--method {method} needs --targets (or name a method per target: --method key={method},...)")
        return {target: method for target in targets}
    if targets:
        raise ValueError(f"--method {method} names the targets itself; drop --targets")
    pairs = method.items() if isinstance(method, dict) else (item.partition("=")[::2] for item in method.split(","))
    methods = {}
    for target, name in pairs:
        target, name = target.strip(), name.strip()
        if not target or not name or target in methods:
            raise ValueError(f"--method {method!r}: write TARGET=METHOD pairs, each target once, separated by commas (key=ae,output=svd)")
        methods[target] = name
    return methods


def method_label(methods: dict[str, str]) -> str:
    """One method's name, or "target=method,..." when the targets differ (the config's `compression_method`)."""
    names = set(methods.values())
    return names.pop() if len(names) == 1 else ",".join(f"{target}={method}" for target, method in methods.items())


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
    """Of all ranks whose core + factors fit `budget`, those with the smallest HOSVD error bound (the sum over the
    modes of the squared singular values each mode's rank discards): every (r1, r2), with the largest r3 that fits.

    A greedy growth by singular value per added parameter is path-dependent (a mode's cost grows with the others'
    ranks): on the word embeddings' [blocks, 384 ids, 384] tensor it compressed the meaningless "id within a block"
    mode and left the hidden mode at full rank, twice the error of the reverse at the same size.
    """
    dims = list(tensor.shape)
    tails = []  # tails[mode][r]: squared singular values a rank r discards in that mode
    for mode in range(3):
        spectrum = torch.linalg.eigvalsh(_unfold(tensor, mode) @ _unfold(tensor, mode).T).flip(0).clamp_min(0)
        tails.append(torch.cat([spectrum.flip(0).cumsum(0).flip(0), spectrum.new_zeros(1)]))
    first, second = torch.meshgrid(torch.arange(1, dims[0] + 1), torch.arange(1, dims[1] + 1), indexing="ij")
    third = torch.div(budget - dims[0] * first - dims[1] * second, first * second + dims[2], rounding_mode="floor").clamp(max=dims[2])
    fits = third >= 1
    if not fits.any():
        raise ValueError(f"the ratio is too high for a Tucker form of a {dims} tensor: ranks [1, 1, 1] store {tucker_parameter_count(dims, [1, 1, 1])}")
    third = third.clamp(min=1).long()
    bound = tails[0][first] + tails[1][second] + tails[2][third]
    best = torch.where(fits, bound, torch.inf).flatten().argmin()
    return [int(first.flatten()[best]), int(second.flatten()[best]), int(third.flatten()[best])]


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


# --- data-aware row weights ------------------------------------------------------------------------------------


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


# --- the command -----------------------------------------------------------------------------------------------


def check_options(
    methods: dict[str, str], ratio: float | None, rank: int | None, tucker_ranks: list[int] | None, data_file: str | None,
    settings: FitSettings,
) -> None:
    """ValueError (FileNotFoundError for a missing file) naming the bad option, before anything is read or written."""
    unknown = sorted({method for method in methods.values() if method not in METHODS})
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; available: {list(METHODS)}")
    chosen = set(methods.values())
    if tucker_ranks is not None and "tucker" not in chosen:
        raise ValueError(f"--tucker-ranks is for --method tucker, not {method_label(methods)}")
    if "tucker" in chosen and ((ratio is None) == (tucker_ranks is None) or (rank is not None and chosen == {"tucker"})):
        raise ValueError("give exactly one of --ratio and --tucker-ranks for tucker (it takes no --rank)")
    if chosen - {"tucker"} and ((ratio is None) == (rank is None) or ("pruning" in chosen and ratio is None)):
        raise ValueError("give exactly one of --ratio and --rank (pruning takes --ratio)")
    if tucker_ranks is not None and (len(tucker_ranks) != 3 or min(tucker_ranks) < 1):
        raise ValueError(f"--tucker-ranks needs three integers >= 1 (blocks, block rows, columns), got {tucker_ranks}")
    if ratio is not None and not ratio > 1:
        raise ValueError(f"ratio must be > 1, got {ratio}")
    if rank is not None and rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    _check_fit_settings(settings)
    if "fwsvd" in chosen and not (data_file and os.path.isfile(data_file)):
        raise FileNotFoundError(f"fwsvd needs --data-file, a local CSV/JSON of the task (got {data_file!r})")
    if data_file is not None and not chosen & {"fwsvd", "ae"}:
        raise ValueError(f"--data-file is used by fwsvd and ae only, not by {method_label(methods)}")
    if data_file is not None and not os.path.isfile(data_file):
        raise FileNotFoundError(f"--data-file {data_file} does not exist")


def _check_fit_settings(settings: FitSettings) -> None:
    recipe = settings.autoencoder
    if settings.ae_grouping not in AE_GROUPINGS:
        raise ValueError(f"unknown --ae-grouping {settings.ae_grouping!r}; available: {list(AE_GROUPINGS)}")
    if recipe.name not in AE_RECIPES:
        raise ValueError(f"unknown --ae-recipe {recipe.name!r}; available: {list(AE_RECIPES)}")
    if recipe.row_scale is not None and recipe.row_scale not in ROW_SCALES:
        raise ValueError(f"unknown --ae-row-scale {recipe.row_scale!r}; available: {list(ROW_SCALES)}")
    counts = {"--ae-steps": recipe.steps, "--batch-size": recipe.batch_size, "--ae-eval-every": recipe.eval_every}
    bad = [f"{option} {value}" for option, value in counts.items() if value is not None and value < 1]
    if bad or settings.refine_steps < 0:
        raise ValueError(f"--ae-steps, --batch-size and --ae-eval-every must be >= 1, --refine-steps >= 0; got {bad or settings.refine_steps}")
    rates = (recipe.learning_rate or 1.0, settings.refine_learning_rate)
    if not all(rate > 0 for rate in rates):
        raise ValueError(f"--learning-rate must be > 0, got {recipe.learning_rate}")


def check_rank(base, groups: dict[str, list[str]], methods: dict[str, str], rank: int | None) -> None:
    """ValueError when an explicit `--rank` exceeds what a matrix can hold: a low-rank factorisation of an n x m
    matrix has rank <= min(n, m), an autoencoder's code per row at most the row's m entries."""
    if rank is None:
        return
    for target, paths in groups.items():
        method = methods[target]
        if method not in ("svd", "fwsvd", "ae"):
            continue
        rows, cols = base.get_submodule(paths[0]).weight.shape
        limit = cols if method == "ae" else min(rows, cols)
        if rank > limit:
            raise ValueError(
                f"--rank {rank} is too large for the {rows} x {cols} {target} matrices; {method} allows at most {limit}"
            )


def check_data_driven_source(methods: dict[str, str], data_file: str | None, architecture: str, source: str) -> None:
    """fwsvd and `ae --data-file` weight rows by the gradient of a sequence classifier's loss on labelled
    sentences: refuse any other checkpoint before reading its weights."""
    users = sorted({method for method in methods.values() if method == "fwsvd" or (method == "ae" and data_file)})
    if users and not architecture.endswith("ForSequenceClassification"):
        raise ValueError(
            f"{' and '.join(users)} with --data-file weight rows by a sequence classifier's task loss; {source} is a "
            f"{architecture}, which has none on sentence labels: use svd, or ae without --data-file"
        )


# Method -> (its factors module, the closed-form fit that initialises it).
CLOSED_FORM_FITS = {"kronecker": (KroneckerSumWeight, fit_kronecker), "tucker": (TuckerWeight, fit_tucker)}


@dataclasses.dataclass
class Unit:
    """Matrices compressed together: one module, or (ae, concatenated) one module type across layers."""

    target: str
    method: str
    paths: list[str]
    spec: dict
    decoder: dict | None = None  # ae: the decoder's layout, named spec["decoder"]


def plan_units(base, groups: dict[str, list[str]], methods: dict[str, str], ratio, rank, tucker_ranks, ae_grouping: str) -> list[Unit]:
    """Every unit with its resolved layout; sizes that cannot fit raise ValueError before any fitting."""
    head_size = base.config.hidden_size // base.config.num_attention_heads
    units = []
    for target, paths in groups.items():
        method = methods[target]
        rows, cols = base.get_submodule(paths[0]).weight.shape
        if method == "ae":
            together = [paths] if ae_grouping == "concatenated" else [[path] for path in paths]
            for unit_paths in together:
                name = target if ae_grouping == "concatenated" else unit_paths[0].replace(".", "_")
                latent = rank or autoencoder_latent_size(rows * len(unit_paths), cols, ratio)
                decoder = {"latent_size": latent, "hidden_sizes": decoder_hidden_sizes(latent), "output_size": cols}
                units.append(Unit(target, method, unit_paths, {"kind": "autoencoder", "decoder": name, "latent_size": latent}, decoder))
            continue
        if method == "tucker":  # ranks follow each matrix's own spectra
            block_rows = cols if target == "word_embeddings" else head_size
            units += [Unit(target, method, [path], {"kind": "tucker", **tucker_layout(base.get_submodule(path).weight, block_rows, ratio, tucker_ranks)})
                      for path in paths]
            continue
        if method == "pruning":
            spec = {"kind": "pruned", "kept": pruning_kept_count(rows, cols, ratio)}
        elif method == "kronecker":
            spec = {"kind": "kronecker", **kronecker_layout(rows, cols, ratio, rank)}
        else:
            spec = {"kind": "low_rank", "rank": rank or rank_for_ratio(rows, cols, ratio)}
        units += [Unit(target, method, [path], spec) for path in paths]
    return units


def fit_unit(base, unit: Unit, row_weights: dict, settings: FitSettings, probe: AgreementProbe | None) -> tuple[dict, dict]:
    """Compress one unit: (path -> {"state": tensors replacing the module's weight, keyed by their name inside
    the module; "approximation": the weight it now stands for; "stored": its parameter count}, and for an
    autoencoder {"state": its decoder's tensors, "training": how it trained and which step it kept})."""
    if unit.method == "ae":
        return _fit_autoencoder(base, unit, row_weights, settings, probe)
    (path,) = unit.paths
    weight = base.get_submodule(path).weight.detach()
    if unit.method == "pruning":
        mask = magnitude_mask(weight, unit.spec["kept"])
        factors = SparseWeight(*weight.shape, unit.spec["kept"])
        with torch.no_grad():
            factors.values.copy_(weight[mask])
            factors.mask_bits.copy_(pack_bits(mask))
        return {path: _factored_result(factors)}, {}
    if unit.method in CLOSED_FORM_FITS:
        factors_class, fit = CLOSED_FORM_FITS[unit.method]
        factors = factors_class(*weight.shape, **{key: value for key, value in unit.spec.items() if key != "kind"})
        fit(factors, weight)
        refine_factors(factors, weight, settings, path)
        return {path: _factored_result(factors)}, {}
    first, second = low_rank_factors(weight, unit.spec["rank"], row_weights.get(path))
    if unit.target == "word_embeddings":
        state = {"codes.weight": first, "up.weight": second.T.contiguous()}
    else:
        state = {"down.weight": second.contiguous(), "up.weight": first}
    return {path: {"state": state, "approximation": first @ second, "stored": first.numel() + second.numel()}}, {}


def _fit_autoencoder(base, unit: Unit, row_weights: dict, settings: FitSettings, probe: AgreementProbe | None) -> tuple[dict, dict]:
    weights = [base.get_submodule(path).weight.detach() for path in unit.paths]
    sizes = [weight.shape[0] for weight in weights]
    selection = None if probe is None else (
        lambda rows: probe.score(dict(zip(unit.paths, rows.split(sizes))))["hidden_cosine"]
    )
    decoder = RowDecoder(**unit.decoder)
    trained = train_autoencoder(
        torch.cat(weights), decoder, settings.autoencoder, settings.device, settings.seed,
        torch.cat([row_weights[path] for path in unit.paths]) if row_weights else None, selection, unit.spec["decoder"],
    )
    decoders = nn.ModuleDict({unit.spec["decoder"]: decoder})
    results = {}
    for path, weight, codes, scales in zip(unit.paths, weights, trained.codes.split(sizes), trained.row_scales.split(sizes)):
        factors = AutoencoderWeight(*weight.shape, unit.spec["latent_size"], unit.spec["decoder"], decoders)
        with torch.no_grad():
            factors.codes.copy_(codes)
            factors.row_scales.copy_(scales)
        results[path] = _factored_result(factors)
    recipe = settings.autoencoder.resolved(sum(sizes))
    training = {
        "recipe": recipe.name, "steps": recipe.steps, "batch_size": recipe.batch_size, "learning_rate": recipe.learning_rate,
        "row_scale": recipe.row_scale, "kept_step": trained.selected_step,
        "selection": None if probe is None else {"signal": "hidden_cosine on the held-out selection sentences", "score": trained.selection_score},
    }
    return results, {"state": decoder.state_dict(), "training": training}


def _factored_result(factors: nn.Module) -> dict:
    state = {f"factors.{name}": tensor for name, tensor in factors.state_dict().items()}
    with torch.no_grad():
        approximation = factors()
    return {"state": state, "approximation": approximation, "stored": sum(stored_count(t) for t in state.values())}


def compress_checkpoint(
    source: str,
    output_dir: str,
    method: str | dict[str, str],
    targets: list[str] | None = None,
    layers: list[int] | None = None,
    ratio: float | None = None,
    rank: int | None = None,
    data_file: str | None = None,
    fisher_samples: int = DEFAULT_FISHER_SAMPLES,
    tucker_ranks: list[int] | None = None,
    settings: FitSettings | None = None,
    heldout_file: str | None = DEFAULT_HELDOUT_FILE,
    heldout_samples: int = DEFAULT_HELDOUT_SAMPLES,
    fisher_floor: float = DEFAULT_FISHER_FLOOR,
    overwrite: bool = False,
) -> dict:
    """Write `output_dir`, the `compressed-bert` form of the BERT checkpoint `source`; returns the report.

    `method` is one method for all `targets`, or target -> method ("key=ae,output=svd" or a dict, targets implied).
    `rank` is the explicit size of svd/fwsvd (rank), ae (latent size) and kronecker (terms); `tucker_ranks` that
    of tucker; otherwise every size follows from `ratio`. `data_file` gives fwsvd its Fisher weights (required)
    and ae its row weights in the loss (optional), from the first `fisher_samples` rows. `heldout_file` (None: no
    held-out text) gives `heldout_samples` sentences that choose the autoencoder's stopping step and as many others
    that score the report's function measures. `output_dir` is written whole at the end; it may not be the source
    or an input, and an existing non-empty one is replaced only with `overwrite`.
    """
    settings = settings or FitSettings()
    methods = resolve_methods(method, targets)
    check_options(methods, ratio, rank, tucker_ranks, data_file, settings)
    if not fisher_floor >= 0 or heldout_samples < 1:
        raise ValueError(f"--fisher-floor must be >= 0 and --heldout-samples >= 1, got {fisher_floor} and {heldout_samples}")
    check_checkpoint_folder(source, need_weights=True)
    inputs = [source, *([data_file] if data_file else []), *([heldout_file] if heldout_file else [])]
    check_output_path(output_dir, overwrite, inputs)
    source_config = AutoConfig.from_pretrained(source)
    if source_config.model_type != "bert":
        raise ValueError(f"{source} holds a {source_config.model_type!r} checkpoint; compress needs a 'bert' one")
    architecture = (source_config.architectures or ["BertModel"])[0]
    check_data_driven_source(methods, data_file, architecture, source)
    read_class, write_class = next(
        (classes for suffix, classes in HEADS.items() if architecture.endswith(suffix)), (BertModel, CompressedBertModel)
    )
    groups = paths_by_target(list(methods), layers, source_config.num_hidden_layers)
    heldout = read_heldout_text(heldout_file, "sentence", heldout_samples) if heldout_file else None
    model = read_class.from_pretrained(source)
    check_rank(model.base_model, groups, methods, rank)
    units = plan_units(model.base_model, groups, methods, ratio, rank, tucker_ranks, settings.ae_grouping)
    tokenizer = load_checkpoint_tokenizer(source) if data_file or heldout else None
    weighted_paths = [path for unit in units if unit.method in ("fwsvd", "ae") for path in unit.paths]
    row_weights = (
        fisher_row_weights(model, data_file, tokenizer, weighted_paths, fisher_samples, 128, fisher_floor)
        if data_file else {}
    )
    selection_probe = (
        AgreementProbe(model, tokenizer, heldout.selection) if heldout and any(unit.method == "ae" for unit in units) else None
    )

    torch.manual_seed(settings.seed)
    prefix = f"{model.base_model_prefix}." if model.base_model is not model else ""
    state = model.state_dict()
    specs, decoder_specs, modules_report, decoders_report, approximations = {}, {}, {}, {}, {}
    for unit in units:
        results, decoder = fit_unit(model.base_model, unit, row_weights, settings, selection_probe)
        if unit.decoder is not None:
            name = unit.spec["decoder"]
            decoder_specs[name] = unit.decoder
            state.update({f"{prefix}compressed_decoders.{name}.{key}": tensor for key, tensor in decoder["state"].items()})
            decoders_report[name] = {
                "target": unit.target, "modules": unit.paths, "params": sum(t.numel() for t in decoder["state"].values()),
                "training": decoder["training"],
            }
        for path, result in results.items():
            key, weight = f"{prefix}{path}", state.pop(f"{prefix}{path}.weight")
            state.update({f"{key}.{name}": tensor for name, tensor in result["state"].items()})
            if "up.weight" in result["state"] and f"{key}.bias" in state:  # a low-rank linear's bias sits on `up`
                state[f"{key}.up.bias"] = state.pop(f"{key}.bias")
            specs[path] = unit.spec
            approximations[path] = result["approximation"].to(weight.dtype)
            modules_report[path] = _module_report(unit, weight, result, decoders_report)

    config = CompressedBertConfig(
        **{k: v for k, v in source_config.to_dict().items() if k not in ("model_type", "transformers_version", "architectures")},
        compression_method=method_label(methods), compressed_modules=specs, compressed_decoders=decoder_specs or None,
    )
    compressed = write_class(config)
    compressed.load_state_dict(state, strict=True)
    report_probe = AgreementProbe(model, tokenizer, heldout.report) if heldout else None
    report = _report(model, compressed, modules_report, decoders_report, groups, methods, approximations, report_probe, heldout)
    with staged_output_folder(output_dir, overwrite, inputs) as staged:
        compressed.save_pretrained(staged)
        copy_tokenizer_files(source, staged)
        with open(os.path.join(staged, REPORT_FILE), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return report


def _module_report(unit: Unit, weight: torch.Tensor, result: dict, decoders: dict) -> dict:
    rows, cols = weight.shape
    entry = {
        "method": unit.method, **unit.spec, "shape": [rows, cols], "params_before": rows * cols, "params_after": result["stored"],
        **_fidelity([weight], [result["approximation"].to(weight.dtype)]),
    }
    shared = 0.0
    if unit.decoder is not None:  # the decoder is stored once; each module it serves carries an equal share
        decoder = decoders[unit.spec["decoder"]]
        shared = decoder["params"] / len(decoder["modules"])
        entry["decoder_params_share"] = shared
    entry["ratio"] = rows * cols / (result["stored"] + shared)
    return entry


def _fidelity(weights: list[torch.Tensor], approximations: list[torch.Tensor]) -> dict:
    """Relative Frobenius error of the matrices together, and the mean cosine between their rows and the originals."""
    error = sum(float(torch.linalg.norm(w - a) ** 2) for w, a in zip(weights, approximations))
    total = sum(float(torch.linalg.norm(w) ** 2) for w in weights)
    cosines = torch.cat([torch.nn.functional.cosine_similarity(a, w, dim=1) for w, a in zip(weights, approximations)])
    return {"relative_error": math.sqrt(error / total), "mean_cosine": float(cosines.mean())}


def svd_baselines(weights: list[torch.Tensor], ratio: float) -> dict:
    """Linear baselines at compression ratio `ratio` of the matrices `weights` (one module type): per-matrix SVD;
    the same with every row rescaled to its true norm (what a norm-keeping method such as the autoencoder is up
    against: it cannot reach SVD's error at SVD's cosine); and, for several matrices, one SVD basis shared by the
    stacked rows, rank floor(L n m / (c (L n + m))) for L matrices of n x m (what sharing across layers buys)."""
    (rows, cols), count = weights[0].shape, len(weights)
    rank = rank_for_ratio(rows, cols, ratio)
    per_matrix = [torch.matmul(*low_rank_factors(weight, rank)) for weight in weights]
    rescaled = [a * (torch.linalg.vector_norm(w, dim=1) / torch.linalg.vector_norm(a, dim=1).clamp_min(1e-12))[:, None]
                for w, a in zip(weights, per_matrix)]
    baselines = {
        "svd": {"rank": rank, **_fidelity(weights, per_matrix)},
        "svd_true_norms": {"rank": rank, **_fidelity(weights, rescaled)},
    }
    if count > 1:
        shared_rank = max(1, math.floor(count * rows * cols / (ratio * (count * rows + cols))))
        stacked = torch.matmul(*low_rank_factors(torch.cat(weights), shared_rank))
        baselines["shared_basis_svd"] = {"rank": shared_rank, **_fidelity(weights, list(stacked.split(rows)))}
    return baselines


def inference_cost(module: nn.Module) -> dict:
    """Which forward a compressed module runs at inference and its multiply-adds per token, next to the dense
    module's (an embedding lookup of a cached table costs none)."""
    if isinstance(module, LowRankLinear):
        return {"forward": "low_rank", "macs_per_token": module.down.out_features * (module.down.in_features + module.up.out_features)}
    if isinstance(module, LowRankEmbedding):
        return {"forward": "low_rank_lookup", "macs_per_token": module.up.in_features * module.up.out_features}
    rows, cols = module.factors.shape
    if isinstance(module, FactoredLinear):
        factorised = module.factorised
        return {
            "forward": "factorised" if factorised else "dense", "dense_macs_per_token": rows * cols,
            "macs_per_token": module.factors.linear_macs() if factorised else rows * cols,
            **({"factorised_macs_per_token": module.factors.linear_macs()} if hasattr(module.factors, "linear_macs") else {}),
        }
    return {"forward": "lookup", "macs_per_token": 0}


def _stored_count(model) -> int:
    """Everything the checkpoint stores: parameters, and the buffers that carry information (the autoencoder's row
    lengths, the pruning bit masks)."""
    return sum(stored_count(tensor) for tensor in model.state_dict().values())


def _report(
    original, compressed, modules: dict, decoders: dict, groups: dict[str, list[str]], methods: dict[str, str],
    approximations: dict[str, torch.Tensor], probe: AgreementProbe | None, heldout: HeldoutText | None,
) -> dict:
    base = original.base_model
    for path, entry in modules.items():
        entry.update(inference_cost(compressed.base_model.get_submodule(path)))
    by_target = {}
    for target, paths in groups.items():
        before = sum(modules[path]["params_before"] for path in paths)
        after = sum(modules[path]["params_after"] for path in paths) + sum(
            decoder["params"] for decoder in decoders.values() if decoder["target"] == target
        )
        weights = [base.get_submodule(path).weight.detach() for path in paths]
        by_target[target] = {
            "method": methods[target], "params_before": before, "params_after": after, "ratio": before / after,
            **_fidelity(weights, [approximations[path] for path in paths]),
            "function": probe.score({path: approximations[path] for path in paths}) if probe else None,
            "baselines_at_same_ratio": svd_baselines(weights, before / after),
        }
    decoder_params = sum(decoder["params"] for decoder in decoders.values())
    before = sum(m["params_before"] for m in modules.values())
    after = sum(m["params_after"] for m in modules.values()) + decoder_params
    model_before, model_after = _stored_count(original), _stored_count(compressed)
    return {
        "method": method_label(methods),
        "methods": methods,
        "counting": (
            "stored numbers: factors, codes, decoders (once per decoder; each module's report carries its share), "
            "autoencoder row lengths (buffers), pruned matrices' kept weights plus their bit masks (32 mask bits count "
            "as one number); biases kept exactly, counted in the model totals only"
        ),
        "function_measure": None if heldout is None else {
            "file": heldout.source, "sentences": len(heldout.report), "selection_sentences": len(heldout.selection),
            "hidden_cosine": "mean cosine of the base model's last hidden states to the uncompressed model's, over real tokens",
            "prediction_agreement": "fraction of sentences whose predicted class is unchanged (sequence classifiers)",
        },
        "modules": modules,
        "decoders": decoders,
        "targets": by_target,
        "compressed_modules": {"params_before": before, "params_after": after, "ratio": before / after},
        "function": probe.score(approximations) if probe else None,
        "model": {"params_before": model_before, "params_after": model_after, "ratio": model_before / model_after},
    }


def run(args: argparse.Namespace) -> dict:
    recipe = AutoencoderRecipe(
        name=args.ae_recipe, steps=args.ae_steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
        row_scale=args.ae_row_scale, eval_every=args.ae_eval_every,
    )
    settings = FitSettings(
        autoencoder=recipe, refine_steps=args.refine_steps, refine_learning_rate=args.learning_rate or REFINE_LEARNING_RATE,
        ae_grouping=args.ae_grouping, device=args.device, seed=args.seed,
    )
    report = compress_checkpoint(
        args.source, args.output_dir, args.method, args.targets, args.layers, args.ratio, args.rank, args.data_file,
        args.fisher_samples, args.tucker_ranks, settings, args.heldout_file or None, args.heldout_samples, args.fisher_floor,
        args.overwrite,
    )
    for path, module in report["modules"].items():
        print(
            f"{path}: {module['method']}, {module['params_before']} -> {module['params_after']} params"
            + (f" + {module['decoder_params_share']:.0f} decoder share" if "decoder_params_share" in module else "")
            + f" ({module['ratio']:.2f}x), relative error {module['relative_error']:.4f}, mean cosine {module['mean_cosine']:.4f}, "
            f"{module['forward']} forward {module['macs_per_token']} MACs/token"
        )
    for name, decoder in report["decoders"].items():
        print(f"decoder {name}: {decoder['params']} params, shared by {len(decoder['modules'])} modules, kept step "
              f"{decoder['training']['kept_step']} of {decoder['training']['steps']}")
    for target, figures in report["targets"].items():
        function = figures["function"]
        print(
            f"{target}: {figures['method']}, {figures['params_before']} -> {figures['params_after']} params ({figures['ratio']:.2f}x), "
            f"relative error {figures['relative_error']:.4f} (svd {figures['baselines_at_same_ratio']['svd']['relative_error']:.4f})"
            + (f", hidden cosine {function['hidden_cosine']:.4f}" if function else "")
        )
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
    parser.add_argument("--method", required=True,
                        help=f"one of {', '.join(METHODS)} for every --targets, or one per target: key=ae,output=svd (then no --targets)")
    parser.add_argument("--targets", nargs="+", help=f"any of {', '.join(TARGETS)}")
    parser.add_argument("--layers", type=int, nargs="+", help="layer indices (default: all)")
    parser.add_argument("--ratio", type=float, help="target compression ratio of each matrix (> 1)")
    parser.add_argument("--rank", type=int, help="explicit size instead of --ratio: svd/fwsvd rank, ae latent size, kronecker terms")
    parser.add_argument("--tucker-ranks", type=int, nargs=3, metavar=("BLOCKS", "BLOCK_ROWS", "COLUMNS"),
                        help="explicit Tucker ranks instead of --ratio")
    parser.add_argument("--data-file", help="local CSV/JSON (sentence,label): fwsvd's Fisher weights (required), ae's row weights (optional); "
                                            "a sequence-classification source only")
    parser.add_argument("--fisher-samples", type=positive_int, default=DEFAULT_FISHER_SAMPLES,
                        help=f"rows of --data-file used for the Fisher (default {DEFAULT_FISHER_SAMPLES})")
    parser.add_argument("--fisher-floor", type=float, default=DEFAULT_FISHER_FLOOR,
                        help=f"each row's Fisher is at least this times its matrix's mean (default {DEFAULT_FISHER_FLOOR}; 0: none)")
    parser.add_argument("--heldout-file", default=DEFAULT_HELDOUT_FILE,
                        help="CSV/JSON with a 'sentence' column: its first --heldout-samples sentences pick the ae stopping step, the "
                             "next as many score the report's function measures (default: the bundled SST-2 train sample; '' for none)")
    parser.add_argument("--heldout-samples", type=positive_int, default=DEFAULT_HELDOUT_SAMPLES, help=f"default {DEFAULT_HELDOUT_SAMPLES}")
    parser.add_argument("--ae-grouping", choices=AE_GROUPINGS, default=defaults.ae_grouping,
                        help="ae: one decoder per module type across layers (concatenated, the paper's default) or per matrix")
    parser.add_argument("--ae-recipe", choices=AE_RECIPES, default=defaults.autoencoder.name,
                        help="ae: autodecoder (default: codes trained directly from the SVD, large batches, Adam 3e-3 with warm-up and cosine decay, "
                             "fitted row lengths) or paper (encoder, batch 16, Adam 1e-3, StepLR, row norms)")
    parser.add_argument("--ae-steps", type=int, help="ae: optimizer steps (autodecoder 1500; paper 30 epochs of the rows)")
    parser.add_argument("--ae-eval-every", type=int, help="ae: steps between held-out scores (default: a tenth of the steps)")
    parser.add_argument("--ae-row-scale", choices=ROW_SCALES,
                        help="ae: each row's stored length, fitted (least squares, autodecoder default) or its norm (paper default)")
    parser.add_argument("--batch-size", type=int, help="ae: rows per step (autodecoder: all rows up to 4096; paper 16)")
    parser.add_argument("--learning-rate", type=float,
                        help="Adam learning rate of ae (autodecoder 3e-3, paper 1e-3) and of refinement (1e-3)")
    parser.add_argument("--refine-steps", type=int, default=defaults.refine_steps,
                        help="kronecker/tucker: Adam steps on the paper's loss after the closed-form fit (default 0)")
    parser.add_argument("--device", default=defaults.device, help="where ae training and refinement run: cpu (default), cuda, cuda:1")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of initialisation and row shuffling (default 0)")


__all__ = [
    "METHODS", "TARGETS", "FitSettings", "add_arguments", "autoencoder_latent_size", "compress_checkpoint",
    "kronecker_layout", "low_rank_factors", "rank_for_ratio", "resolve_methods", "run", "svd_baselines", "tucker_layout",
]
