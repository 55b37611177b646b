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
  two recipes (see `compression.autoencoder`): "autodecoder" (default: codes trained directly from the SVD, large
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
uncompressed model on held-out sentences, see `compression.agreement`), and the SVD baselines at the same size:
per-matrix SVD, the same with each row rescaled to its true norm (what a norm-keeping method is up against), and
one SVD basis shared by the stacked layers (what sharing across layers buys a linear method).

    transformers-prune compress runs/bert runs/bert-ae10 --method ae --targets key output --ratio 10
    transformers-prune compress runs/bert runs/bert-mixed --method key=ae,output=pruning,word_embeddings=ae --ratio 3
"""

from __future__ import annotations

import argparse
import os

from .choices import (
    AE_GROUPINGS,
    AE_RECIPES,
    COMPRESSION_METHODS,
    COMPRESSION_TARGETS,
    FISHER_FLOOR,
    FISHER_SAMPLES,
    HELDOUT_SAMPLES,
    ROW_SCALES,
)
from .common import add_overwrite_argument, positive_int


def run(args: argparse.Namespace) -> dict:
    from transformers_prune.compression import (
        DEFAULT_HELDOUT_FILE,
        REFINE_LEARNING_RATE,
        REPORT_FILE,
        AutoencoderRecipe,
        FitSettings,
        compress_checkpoint,
    )

    heldout_file = DEFAULT_HELDOUT_FILE if args.heldout_file is None else args.heldout_file or None
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
        args.fisher_samples, args.tucker_ranks, settings, heldout_file, args.heldout_samples, args.fisher_floor,
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
    parser.add_argument("source", help="BERT checkpoint folder (any head, or a plain BertModel)")
    parser.add_argument("output_dir")
    add_overwrite_argument(parser)
    parser.add_argument("--method", required=True,
                        help=f"one of {', '.join(COMPRESSION_METHODS)} for every --targets, or one per target: key=ae,output=svd (then no --targets)")
    parser.add_argument("--targets", nargs="+", help=f"any of {', '.join(COMPRESSION_TARGETS)}")
    parser.add_argument("--layers", type=int, nargs="+", help="layer indices (default: all)")
    parser.add_argument("--ratio", type=float, help="target compression ratio of each matrix (> 1)")
    parser.add_argument("--rank", type=int, help="explicit size instead of --ratio: svd/fwsvd rank, ae latent size, kronecker terms")
    parser.add_argument("--tucker-ranks", type=int, nargs=3, metavar=("BLOCKS", "BLOCK_ROWS", "COLUMNS"),
                        help="explicit Tucker ranks instead of --ratio")
    parser.add_argument("--data-file", help="local CSV/JSON (sentence,label): fwsvd's Fisher weights (required), ae's row weights (optional); "
                                            "a sequence-classification source only")
    parser.add_argument("--fisher-samples", type=positive_int, default=FISHER_SAMPLES,
                        help=f"rows of --data-file used for the Fisher (default {FISHER_SAMPLES})")
    parser.add_argument("--fisher-floor", type=float, default=FISHER_FLOOR,
                        help=f"each row's Fisher is at least this times its matrix's mean (default {FISHER_FLOOR}; 0: none)")
    parser.add_argument("--heldout-file", default=None,
                        help="CSV/JSON with a 'sentence' column: its first --heldout-samples sentences pick the ae stopping step, the "
                             "next as many score the report's function measures (default: the bundled SST-2 train sample; '' for none)")
    parser.add_argument("--heldout-samples", type=positive_int, default=HELDOUT_SAMPLES, help=f"default {HELDOUT_SAMPLES}")
    parser.add_argument("--ae-grouping", choices=AE_GROUPINGS, default=AE_GROUPINGS[0],
                        help="ae: one decoder per module type across layers (concatenated, the paper's default) or per matrix")
    parser.add_argument("--ae-recipe", choices=AE_RECIPES, default=AE_RECIPES[0],
                        help="ae: autodecoder (default: codes trained directly from the SVD, large batches, Adam 3e-3 with warm-up and cosine decay, "
                             "fitted row lengths) or paper (encoder, batch 16, Adam 1e-3, StepLR, row norms)")
    parser.add_argument("--ae-steps", type=int, help="ae: optimizer steps (autodecoder 1500; paper 30 epochs of the rows)")
    parser.add_argument("--ae-eval-every", type=int, help="ae: steps between held-out scores (default: a tenth of the steps)")
    parser.add_argument("--ae-row-scale", choices=ROW_SCALES,
                        help="ae: each row's stored length, fitted (least squares, autodecoder default) or its norm (paper default)")
    parser.add_argument("--batch-size", type=int, help="ae: rows per step (autodecoder: all rows up to 4096; paper 16)")
    parser.add_argument("--learning-rate", type=float,
                        help="Adam learning rate of ae (autodecoder 3e-3, paper 1e-3) and of refinement (1e-3)")
    parser.add_argument("--refine-steps", type=int, default=0,
                        help="kronecker/tucker: Adam steps on the paper's loss after the closed-form fit (default 0)")
    parser.add_argument("--device", default="cpu", help="where ae training and refinement run: cpu (default), cuda, cuda:1")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and row shuffling (default 0)")


__all__ = ["add_arguments", "run"]
