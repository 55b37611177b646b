"""Configuration of `compressed-bert`: a BERT some of whose weight matrices were compressed offline."""

from huggingface_hub.dataclasses import strict
from transformers import BertConfig

from .config_checks import PlainValidationMixin, check_inference_settings

# Kind -> the layout keys its entry in `compressed_modules` must carry (besides "kind").
MODULE_LAYOUT_KEYS = {
    "low_rank": ("rank",),
    "pruned": ("kept",),
    "autoencoder": ("decoder", "latent_size"),
    "kronecker": ("terms", "factor_shape"),
    "tucker": ("block_rows", "ranks"),
}
MODULE_KINDS = tuple(MODULE_LAYOUT_KEYS)
DECODER_LAYOUT_KEYS = ("latent_size", "hidden_sizes", "output_size")
INFERENCE_ENGINES = ("packed", "hf")


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_positive_int_list(value, length: int | None = None) -> bool:
    return (
        isinstance(value, (list, tuple)) and all(_is_positive_int(v) for v in value)
        and (length is None or len(value) == length)
    )


# Layout key -> (check, what the check allows), shared by every kind that uses the key.
LAYOUT_CHECKS = {
    "rank": (_is_positive_int, "an integer > 0"),
    "kept": (_is_positive_int, "an integer > 0"),
    "latent_size": (_is_positive_int, "an integer > 0"),
    "decoder": (lambda v: isinstance(v, str), "the name of an entry of compressed_decoders"),
    "terms": (_is_positive_int, "an integer > 0"),
    "factor_shape": (lambda v: _is_positive_int_list(v, 2), "two integers > 0 [rows, cols] of each Kronecker factor"),
    "block_rows": (_is_positive_int, "an integer > 0"),
    "ranks": (lambda v: _is_positive_int_list(v, 3), "three integers > 0 [blocks, block rows, columns]"),
    "hidden_sizes": (_is_positive_int_list, "a list of integers > 0"),
    "output_size": (_is_positive_int, "an integer > 0"),
}


@strict
class CompressedBertConfig(PlainValidationMixin, BertConfig):
    """BERT plus the resolved layout of every compressed module, so `from_pretrained` rebuilds them as saved.

    Args:
        compression_method: the method that produced the weights ("svd", "fwsvd", "pruning", "ae", "kronecker",
            "tucker"), or one per target ("key=ae,output=svd"); informative.
        compressed_modules: module path inside the base model (e.g. "encoder.layer.3.attention.self.key",
            "embeddings.word_embeddings") -> its layout:
            - {"kind": "low_rank", "rank": k}: two factors (SVD, FWSVD);
            - {"kind": "pruned", "kept": n}: the n entries kept by magnitude pruning and a bit mask of where they sit;
            - {"kind": "autoencoder", "decoder": name, "latent_size": k}: one k-dim code per row decoded by the MLP
              `compressed_decoders[name]`, rows rescaled to stored lengths (Banaei et al., 2023);
            - {"kind": "kronecker", "terms": r, "factor_shape": [p, q]}: a sum of r Kronecker products A_j (x) B_j,
              each factor p x q, cropped to the matrix;
            - {"kind": "tucker", "block_rows": b, "ranks": [r1, r2, r3]}: the matrix cut into blocks of b rows (the
              heads of an attention projection), that [blocks, b, columns] tensor Tucker-factored at those ranks.
            A linear layer of kind kronecker or tucker runs its factorised product when that costs fewer
            multiply-adds per token than its dense weight (decided from the layout alone).
        compressed_decoders: name -> {"latent_size": k, "hidden_sizes": [h1, ...], "output_size": m}, the decoder
            MLPs of autoencoder modules; several modules (one module type across layers) may share one.
        inference_engine: "packed" (default) runs inference on the packed token engine, linear layers on real
            tokens only, never on padding; "hf" runs BERT's own forward on the padded batch. Both give the same
            outputs on real tokens. Training, `output_attentions` and BERT as a decoder (cross-attention, cache)
            always take BERT's own forward.
        packed_attention_backend: force one of `token_engine.ATTENTION_BACKENDS`; None picks the kernel measured
            fastest for the device.
    """

    model_type = "compressed-bert"

    compression_method: str | None = None
    compressed_modules: dict | None = None
    compressed_decoders: dict | None = None
    inference_engine: str = "packed"
    packed_attention_backend: str | None = None

    def validate_inference(self):
        check_inference_settings(self, INFERENCE_ENGINES)

    def validate_compression(self):
        decoders = self.compressed_decoders or {}
        for name, spec in decoders.items():
            self._validate_layout(f"compressed_decoders[{name!r}]", spec, DECODER_LAYOUT_KEYS)
            if not name.isidentifier():
                raise ValueError(f"compressed_decoders key {name!r} must be a Python identifier (it names a submodule)")
        for path, spec in (self.compressed_modules or {}).items():
            where = f"compressed_modules[{path!r}]"
            if not isinstance(spec, dict) or spec.get("kind") not in MODULE_KINDS:
                raise ValueError(f"{where}={spec!r} is invalid; kind must be one of {MODULE_KINDS}")
            self._validate_layout(where, {k: v for k, v in spec.items() if k != "kind"}, MODULE_LAYOUT_KEYS[spec["kind"]])
            if spec["kind"] == "autoencoder":
                decoder = decoders.get(spec["decoder"])
                if decoder is None:
                    raise ValueError(f"{where}['decoder']={spec['decoder']!r}; allowed: the keys of compressed_decoders {sorted(decoders)}")
                if decoder["latent_size"] != spec["latent_size"]:
                    raise ValueError(
                        f"{where}['latent_size']={spec['latent_size']} differs from its decoder's latent_size {decoder['latent_size']}"
                    )

    @staticmethod
    def _validate_layout(where: str, layout, keys: tuple[str, ...]) -> None:
        if not isinstance(layout, dict):
            raise ValueError(f"{where}={layout!r} is invalid; it must be a dict with keys {list(keys)}")
        unknown = sorted(set(layout) - set(keys))
        if unknown:
            raise ValueError(f"{where} has unknown keys {unknown}; allowed: {list(keys)}")
        for key in keys:
            check, allowed = LAYOUT_CHECKS[key]
            if not check(layout.get(key)):
                raise ValueError(f"{where}[{key!r}]={layout.get(key)!r} is invalid; {key} must be {allowed}")


__all__ = ["CompressedBertConfig"]
