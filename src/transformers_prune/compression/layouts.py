"""Sizes of each compressed form for a target ratio: ranks, latent sizes, Kronecker and Tucker layouts, stored counts."""

from __future__ import annotations

from __future__ import annotations
import math
import torch



# The paper's decoder hidden widths as multiples of the latent size (config.yaml dec_layer_sizes).
DECODER_MULTIPLIERS = (2, 4)


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
        spectrum = torch.linalg.eigvalsh(unfold(tensor, mode) @ unfold(tensor, mode).T).flip(0).clamp_min(0)
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


def unfold(tensor: torch.Tensor, mode: int) -> torch.Tensor:
    return tensor.movedim(mode, 0).reshape(tensor.shape[mode], -1)


__all__ = ["DECODER_MULTIPLIERS", "autoencoder_latent_size", "blocked_tensor", "decoder_hidden_sizes", "decoder_parameter_count", "kronecker_layout", "pruning_kept_count", "rank_for_ratio", "stored_count", "tucker_layout", "tucker_parameter_count", "tucker_ranks_for_budget", "unfold"]
