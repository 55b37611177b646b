"""Compress a trained BERT checkpoint into a `compressed-bert` one: check the options, plan the units, fit each,
write the folder with its report (`compress_checkpoint`)."""

from __future__ import annotations

from __future__ import annotations
import json
import os
import torch
from torch import nn
from transformers import (
    AutoConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)
from .agreement import DEFAULT_HELDOUT_SAMPLES, AgreementProbe, read_heldout_text
from .autoencoder import AE_RECIPES, ROW_SCALES, train_autoencoder
from ..folders import (
    check_checkpoint_folder,
    check_output_path,
    copy_tokenizer_files,
    load_checkpoint_tokenizer,
    staged_output_folder,
)
from ..models.configuration_compressed_bert import CompressedBertConfig
from ..models.modeling_compressed_bert import (
    AutoencoderWeight,
    CompressedBertForQuestionAnswering,
    CompressedBertForSequenceClassification,
    CompressedBertForTokenClassification,
    CompressedBertModel,
    KroneckerSumWeight,
    RowDecoder,
    SparseWeight,
    TuckerWeight,
    pack_bits,
)
from ..resources import bundled_file
from .fitting import (
    DEFAULT_FISHER_FLOOR,
    DEFAULT_FISHER_SAMPLES,
    FitSettings,
    fisher_row_weights,
    fit_kronecker,
    fit_tucker,
    low_rank_factors,
    magnitude_mask,
    refine_factors,
)
from .layouts import (
    autoencoder_latent_size,
    decoder_hidden_sizes,
    kronecker_layout,
    pruning_kept_count,
    rank_for_ratio,
    stored_count,
    tucker_layout,
)
from .report import REPORT_FILE, build_report, module_report
from .targets import AE_GROUPINGS, METHODS, Unit, method_label, paths_by_target, resolve_methods


# Source head -> (HF class to read it, our class to write it).
HEADS = {
    "ForSequenceClassification": (BertForSequenceClassification, CompressedBertForSequenceClassification),
    "ForQuestionAnswering": (BertForQuestionAnswering, CompressedBertForQuestionAnswering),
    "ForTokenClassification": (BertForTokenClassification, CompressedBertForTokenClassification),
}


DEFAULT_HELDOUT_FILE = bundled_file("sst2_train_8k.csv")


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
            modules_report[path] = module_report(unit, weight, result, decoders_report)

    config = CompressedBertConfig(
        **{k: v for k, v in source_config.to_dict().items() if k not in ("model_type", "transformers_version", "architectures")},
        compression_method=method_label(methods), compressed_modules=specs, compressed_decoders=decoder_specs or None,
    )
    compressed = write_class(config)
    compressed.load_state_dict(state, strict=True)
    report_probe = AgreementProbe(model, tokenizer, heldout.report) if heldout else None
    report = build_report(model, compressed, modules_report, decoders_report, groups, methods, approximations, report_probe, heldout)
    with staged_output_folder(output_dir, overwrite, inputs) as staged:
        compressed.save_pretrained(staged)
        copy_tokenizer_files(source, staged)
        with open(os.path.join(staged, REPORT_FILE), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return report


__all__ = ["CLOSED_FORM_FITS", "DEFAULT_HELDOUT_FILE", "HEADS", "check_data_driven_source", "check_options", "check_rank", "compress_checkpoint", "fit_unit", "plan_units"]
