"""Training the autoencoder of `compress --method ae` (Banaei et al., 2023) on the rows of weight matrices.

Two recipes, both counted in optimizer steps and storing the same tensors (per-row codes, the decoder, one length
per row):

- "autodecoder" (the default): no encoder. The codes are trained directly as parameters, started from the
  truncated SVD of the stacked rows (U_k S_k, scaled to unit standard deviation), with the decoder; batches of up
  to 4096 rows (the whole stack for attention and FFN matrices), Adam 3e-3 with a cosine schedule after a linear
  warm-up over 5% of the steps, and each row's stored length is its least-squares fit ||w|| cos(w, decoded row), which stores as much
  as the original norm and never fits worse. The paper throws the encoder away after training anyway, so only the
  way the codes are found changes.
- "paper": the official recipe: the encoder MLP (widths 8x, 4x) produces the codes, batches of 16 rows, Adam 1e-3,
  the learning rate times 0.8 every 10 epochs' worth of steps, 30 epochs' worth of steps by default, original row
  norms. Counted in epochs, it gives a 6-layer model a quarter of the steps the paper's BERT-base got.

Both train on the paper's loss, 0.9091 mean(1 - cos) + 0.0909 RMSE. With a `selection` scorer (a held-out function
signal, see `compression.agreement`), the codes, decoder and lengths are scored every `eval_every` steps and at the
end, and the best-scoring ones are kept (the paper picks its epoch by MLM perplexity); without one the last step is
kept (data-free).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from ..models.modeling_compressed_bert import RowDecoder, decode_rows

AE_RECIPES = ("autodecoder", "paper")
ROW_SCALES = ("fitted", "norm")
COSINE_LOSS_WEIGHT, RMSE_LOSS_WEIGHT = 0.9091, 0.0909  # the paper's training.loss.cos_dist / l2_norm coeff
ENCODER_MULTIPLIERS = (8, 4)  # the paper's enc_layer_sizes, multiples of the latent size
AUTODECODER_MAX_BATCH = 4096
WARMUP_FRACTION = 0.05
PAPER_BATCH, PAPER_EPOCHS, PAPER_DECAY_EPOCHS, PAPER_DECAY = 16, 30, 10, 0.8


@dataclasses.dataclass
class AutoencoderRecipe:
    """How the autoencoder trains; None fields take the recipe's default (see `resolved`)."""

    name: str = "autodecoder"
    steps: int | None = None  # optimizer steps (autodecoder: 1500; paper: 30 epochs of the unit's rows)
    batch_size: int | None = None  # rows per step (autodecoder: all rows up to 4096; paper: 16)
    learning_rate: float | None = None  # Adam (autodecoder: 3e-3, the peak of its schedule; paper: 1e-3)
    row_scale: str | None = None  # "fitted" (autodecoder) or "norm" (paper)
    eval_every: int | None = None  # steps between selection scores (default: a tenth of the steps)

    def resolved(self, rows: int) -> AutoencoderRecipe:
        """This recipe with every default filled in for a unit of `rows` stacked rows."""
        paper = self.name == "paper"
        batch = self.batch_size or (PAPER_BATCH if paper else min(rows, AUTODECODER_MAX_BATCH))
        steps = self.steps or (PAPER_EPOCHS * math.ceil(rows / batch) if paper else 1500)
        return dataclasses.replace(
            self, steps=steps, batch_size=batch, learning_rate=self.learning_rate or (1e-3 if paper else 3e-3),
            row_scale=self.row_scale or ("norm" if paper else "fitted"), eval_every=self.eval_every or max(1, steps // 10),
        )


@dataclasses.dataclass
class TrainedRows:
    """What training keeps: codes [N, k], row lengths [N] (the decoder is trained in place), and how it was chosen."""

    codes: torch.Tensor
    row_scales: torch.Tensor
    steps: int
    selected_step: int
    selection_score: float | None = None


def reconstruction_loss(approximation: torch.Tensor, target: torch.Tensor, row_weights: torch.Tensor | None = None) -> torch.Tensor:
    """The paper's loss, 0.9091 mean(1 - cos(row, target row)) + 0.0909 RMSE, rows optionally weighted (weights
    normalised to mean 1 over the batch; the original normalises them to sum 1, which only rescales the terms)."""
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


def svd_codes(rows: torch.Tensor, latent_size: int) -> torch.Tensor:
    """U_k S_k of the stacked rows [N, m], scaled to unit standard deviation: [N, k]."""
    left, singular, _ = torch.linalg.svd(rows.double(), full_matrices=False)
    codes = left[:, :latent_size] * singular[:latent_size]
    return (codes / codes.std()).to(rows.dtype)


def row_scales_for(decoded: torch.Tensor, rows: torch.Tensor, row_scale: str) -> torch.Tensor:
    """Each row's stored length: its norm, or the least-squares length of the decoded direction, ||w|| cos."""
    norms = torch.linalg.vector_norm(rows, dim=-1)
    if row_scale == "norm":
        return norms
    return norms * torch.nn.functional.cosine_similarity(decoded, rows, dim=-1)


class _CodeSource(nn.Module):
    """The trainable source of the codes: free parameters (autodecoder) or an encoder of the rows (paper)."""

    def __init__(self, rows: torch.Tensor, latent_size: int, recipe: str):
        super().__init__()
        if recipe == "paper":
            self.encoder, self.free = autoencoder_encoder(rows.shape[1], latent_size).to(rows.device), None
        else:
            self.encoder, self.free = None, nn.Parameter(svd_codes(rows, latent_size))

    def forward(self, rows: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        if self.free is None:
            return self.encoder(rows if index is None else rows[index])
        return self.free if index is None else self.free[index]


def _schedule(optimizer, recipe: AutoencoderRecipe, rows: int):
    if recipe.name == "paper":
        decay_every = PAPER_DECAY_EPOCHS * math.ceil(rows / recipe.batch_size)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=decay_every, gamma=PAPER_DECAY)
    return get_cosine_schedule_with_warmup(optimizer, math.ceil(WARMUP_FRACTION * recipe.steps), recipe.steps)


def train_autoencoder(
    rows: torch.Tensor,
    decoder: RowDecoder,
    recipe: AutoencoderRecipe,
    device: str = "cpu",
    seed: int = 0,
    row_weights: torch.Tensor | None = None,
    selection: Callable[[torch.Tensor], float] | None = None,
    name: str = "",
) -> TrainedRows:
    """Train `decoder` (in place) to rebuild `rows` ([N, m]) from per-row codes; `selection(approximation [N, m])`
    scores a candidate (higher is better). Returns the kept codes and row lengths, on the CPU."""
    recipe = recipe.resolved(rows.shape[0])
    rows = rows.to(device, torch.float32)
    norms = torch.linalg.vector_norm(rows, dim=1)
    row_weights = None if row_weights is None else row_weights.to(device, torch.float32)
    torch.manual_seed(seed)
    source = _CodeSource(rows, decoder.layers[0].in_features, recipe.name)
    decoder.to(device).train()
    optimizer = torch.optim.Adam([*source.parameters(), *decoder.parameters()], lr=recipe.learning_rate)
    scheduler = _schedule(optimizer, recipe, rows.shape[0])
    shuffler = torch.Generator().manual_seed(seed)
    order, position = torch.randperm(rows.shape[0], generator=shuffler), 0
    best, last = None, None
    progress = tqdm(range(1, recipe.steps + 1), desc=f"autoencoder {name} ({rows.shape[0]} rows)", unit="step")
    for step in progress:
        full = recipe.batch_size >= rows.shape[0]
        if not full and position >= rows.shape[0]:  # a new epoch: reshuffle
            order, position = torch.randperm(rows.shape[0], generator=shuffler), 0
        index = None if full else order[position:position + recipe.batch_size].to(device)
        position += recipe.batch_size
        pick = (lambda tensor: tensor) if index is None else (lambda tensor: tensor[index])
        target, directions = pick(rows), decoder(source(rows, index))
        scales = row_scales_for(directions, target, recipe.row_scale) if recipe.row_scale == "fitted" else pick(norms)
        approximation = directions * (scales / torch.linalg.vector_norm(directions, dim=-1).clamp_min(1e-12)).unsqueeze(-1)
        loss = reconstruction_loss(approximation, target, None if row_weights is None else pick(row_weights))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % recipe.eval_every == 0 or step == recipe.steps:
            last = _candidate(source, decoder, rows, recipe.row_scale, step)
            progress.set_postfix(loss=f"{loss.item():.4f}")
            if selection is not None:
                with torch.no_grad():
                    last.selection_score = selection(decode_rows(decoder, last.codes, last.row_scales))
                if best is None or last.selection_score > best[0].selection_score:
                    best = (last, copy.deepcopy(decoder.state_dict()))
    kept = last
    if best is not None and best[0] is not last:
        kept = best[0]
        decoder.load_state_dict(best[1])
    decoder.cpu().eval()
    return TrainedRows(kept.codes.cpu(), kept.row_scales.cpu(), recipe.steps, kept.selected_step, kept.selection_score)


@torch.no_grad()
def _candidate(source: _CodeSource, decoder: RowDecoder, rows: torch.Tensor, row_scale: str, step: int) -> TrainedRows:
    codes = source(rows, None).detach().clone()
    return TrainedRows(codes, row_scales_for(decoder(codes), rows, row_scale), step, step)


__all__ = ["AE_RECIPES", "ROW_SCALES", "AutoencoderRecipe", "TrainedRows", "reconstruction_loss", "train_autoencoder"]
