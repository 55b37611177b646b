"""The compression report: per module and per target parameter counts, fidelity, SVD baselines at the same ratio,
the function measures, the inference cost of each compressed module."""

from __future__ import annotations

from __future__ import annotations
import math
import torch
from torch import nn
from .agreement import AgreementProbe, HeldoutText
from ..models.modeling_compressed_bert import (
    FactoredLinear,
    LowRankEmbedding,
    LowRankLinear,
)
from .fitting import low_rank_factors
from .layouts import rank_for_ratio, stored_count
from .targets import Unit, method_label


REPORT_FILE = "compression_report.json"


def module_report(unit: Unit, weight: torch.Tensor, result: dict, decoders: dict) -> dict:
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


def stored_model_count(model) -> int:
    """Everything the checkpoint stores: parameters, and the buffers that carry information (the autoencoder's row
    lengths, the pruning bit masks)."""
    return sum(stored_count(tensor) for tensor in model.state_dict().values())


def build_report(
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
    model_before, model_after = stored_model_count(original), stored_model_count(compressed)
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


__all__ = ["REPORT_FILE", "build_report", "inference_cost", "module_report", "stored_model_count", "svd_baselines"]
