"""Configuration of `compressed-bert`: a BERT some of whose weight matrices were compressed offline."""

from huggingface_hub.dataclasses import strict
from transformers import BertConfig

MODULE_KINDS = ("low_rank", "pruned")


@strict
class CompressedBertConfig(BertConfig):
    """BERT plus the resolved layout of every compressed module, so `from_pretrained` rebuilds them as saved.

    Args:
        compression_method: the method that produced the weights ("svd", "fwsvd", "pruning"); informative.
        compressed_modules: module path inside the base model (e.g. "encoder.layer.3.attention.self.key",
            "embeddings.word_embeddings") -> {"kind": "low_rank", "rank": k} (a linear or embedding stored as two
            factors) or {"kind": "pruned"} (a linear whose zeroed weights are fixed by a mask in the weights).
    """

    model_type = "compressed-bert"

    compression_method: str | None = None
    compressed_modules: dict | None = None

    def __post_init__(self, **kwargs):
        self.validate_compression()  # a plain ValueError before the strict dataclass wraps it
        super().__post_init__(**kwargs)

    def validate_compression(self):
        for path, spec in (self.compressed_modules or {}).items():
            if not isinstance(spec, dict) or spec.get("kind") not in MODULE_KINDS:
                raise ValueError(f"compressed_modules[{path!r}]={spec!r} is invalid; kind must be one of {MODULE_KINDS}")
            if spec["kind"] == "low_rank" and not (isinstance(spec.get("rank"), int) and spec["rank"] > 0):
                raise ValueError(f"compressed_modules[{path!r}] needs an integer rank > 0, got {spec.get('rank')!r}")


__all__ = ["CompressedBertConfig"]
