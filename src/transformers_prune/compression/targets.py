"""Which matrices of a BERT a compression run touches (`--targets`, `--layers`), by which method, in which units."""

from __future__ import annotations

from __future__ import annotations
import dataclasses



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


@dataclasses.dataclass
class Unit:
    """Matrices compressed together: one module, or (ae, concatenated) one module type across layers."""

    target: str
    method: str
    paths: list[str]
    spec: dict
    decoder: dict | None = None  # ae: the decoder's layout, named spec["decoder"]


__all__ = ["AE_GROUPINGS", "LAYER_TARGETS", "METHODS", "TARGETS", "Unit", "method_label", "paths_by_target", "resolve_methods"]
