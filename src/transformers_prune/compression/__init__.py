"""Offline weight compression of a trained BERT into a `compressed-bert` checkpoint (Banaei et al., 2023, and the
baselines it compares with): `compress_checkpoint` is the entry point; `transformers-prune compress` its command.

- `targets`: which matrices, by which method, in which units;
- `layouts`: the size of each compressed form for a ratio;
- `fitting`: fitting a form to a weight (SVD, Fisher weights, pruning, Kronecker, Tucker, refinement);
- `autoencoder`: the paper's autoencoder and its training recipes;
- `agreement`: held-out sentences that pick the autoencoder's step and measure the compressed model's function;
- `report`: the compression report; `checkpoint`: the whole run.
"""

from .agreement import DEFAULT_HELDOUT_SAMPLES, AgreementProbe, HeldoutText, read_heldout_text
from .autoencoder import AE_RECIPES, ROW_SCALES, AutoencoderRecipe, train_autoencoder
from .checkpoint import DEFAULT_HELDOUT_FILE, compress_checkpoint
from .fitting import DEFAULT_FISHER_FLOOR, DEFAULT_FISHER_SAMPLES, REFINE_LEARNING_RATE, FitSettings, low_rank_factors
from .layouts import autoencoder_latent_size, kronecker_layout, rank_for_ratio, tucker_layout
from .report import REPORT_FILE, svd_baselines
from .targets import AE_GROUPINGS, METHODS, TARGETS, resolve_methods

__all__ = [
    "AE_GROUPINGS",
    "AE_RECIPES",
    "DEFAULT_FISHER_FLOOR",
    "DEFAULT_FISHER_SAMPLES",
    "DEFAULT_HELDOUT_FILE",
    "DEFAULT_HELDOUT_SAMPLES",
    "METHODS",
    "REFINE_LEARNING_RATE",
    "REPORT_FILE",
    "ROW_SCALES",
    "TARGETS",
    "AgreementProbe",
    "AutoencoderRecipe",
    "FitSettings",
    "HeldoutText",
    "autoencoder_latent_size",
    "compress_checkpoint",
    "kronecker_layout",
    "low_rank_factors",
    "rank_for_ratio",
    "read_heldout_text",
    "resolve_methods",
    "svd_baselines",
    "train_autoencoder",
    "tucker_layout",
]
