"""`compressed-bert`: BERT with weight matrices compressed offline (Banaei et al., 2023, and its baselines).

The model is HF's BERT with some modules swapped for their compressed form, as recorded in
`config.compressed_modules`: a linear layer or the word embeddings stored as two low-rank factors (SVD,
Fisher-weighted SVD), pruned and stored sparsely (kept entries and a bit mask), as per-row codes decoded by an autoencoder's decoder (the paper's
method; one decoder may serve a module type across layers), as a sum of Kronecker products, or Tucker-factored.
`transformers-prune compress` writes such checkpoints; `from_pretrained` rebuilds the same modules from the config
and never re-runs compression. A linear layer of any other kind than low-rank runs whichever of two forwards costs
fewer multiply-adds per token, decided once from its layout: the dense weight rebuilt from the factors, or the
factors' own product (Tucker: mode products; Kronecker: two small matmuls per term). What either needs is rebuilt
once in eval mode and cached (see `MaterializedWeightMixin`). Inference runs on the packed token engine, on real
tokens only (see `CompressedBertModel`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.bert.modeling_bert import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
)

from .checkpoint_files import HubCheckpointMixin
from .configuration_compressed_bert import CompressedBertConfig
from .modeling_packed_bert import PackedBertHeadMixin, PackedBertModel


class LowRankLinear(nn.Module):
    """W ~ A B as two linears: `down` (B: rank x in, no bias) then `up` (A: out x rank, with W's bias)."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.down = nn.Linear(in_features, rank, bias=False)
        self.up = nn.Linear(rank, out_features, bias=bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(hidden))


class LowRankEmbedding(nn.Module):
    """Embedding table E ~ A B: per-token codes A (`codes`, vocab x rank) decoded by B (`up`, rank -> hidden)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, rank: int, padding_idx: int | None = None):
        super().__init__()
        self.codes = nn.Embedding(num_embeddings, rank, padding_idx=padding_idx)
        self.up = nn.Linear(rank, embedding_dim, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.up(self.codes(input_ids))


class RowDecoder(nn.Module):
    """The autoencoder's decoder (Banaei et al., 2023): a latent code -> one weight row, as LeakyReLU MLP ending in
    Tanh, Linear(k, h1), LeakyReLU, ..., Linear(h_last, m), Tanh. The Tanh output is a direction; the row's length
    comes from its stored norm."""

    def __init__(self, latent_size: int, hidden_sizes: list[int], output_size: int):
        super().__init__()
        widths = [latent_size, *hidden_sizes, output_size]
        layers = []
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(width_in, width_out), nn.LeakyReLU()]
        layers[-1] = nn.Tanh()
        self.layers = nn.Sequential(*layers)
        self.output_size = output_size

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.layers(codes)


def decode_rows(decoder: nn.Module, codes: torch.Tensor, row_scales: torch.Tensor) -> torch.Tensor:
    """Rows decoded from `codes` ([..., k]), each rescaled to length `row_scales` ([...]): [..., m]. A zero-scale row
    stays zero."""
    rows = decoder(codes)
    return rows * (row_scales / torch.linalg.vector_norm(rows, dim=-1).clamp_min(1e-12)).unsqueeze(-1)


class AutoencoderWeight(nn.Module):
    """A weight matrix [rows, cols] as one latent code per row (`codes`, a parameter) decoded by a decoder MLP, each
    decoded row rescaled to a stored length (`row_scales`, a buffer saved with the weights): the row's original L2
    norm (the paper), or the least-squares length ||w|| cos(w, decoded row), which stores as much and fits better.

    The decoder is not a submodule: it lives once in the base model's `compressed_decoders`, under `decoder_name`,
    so all the layers that share it (the paper's "concatenated" setting) store it once in the state dict. This
    module keeps a plain reference to that `ModuleDict`, so it follows `.to()` and `deepcopy` of the model, but not
    `torch.nn.DataParallel` replication (which would keep the first GPU's decoder): use DDP for several GPUs.

    Fixes of the official code: each module holds its own rows' scales (the original indexes the shared norm vector
    with layer-local ids, so at GLUE time every layer used layer 0's norms), and the scales are a saved buffer (the
    original recomputes the norms from the uncompressed weights at load).
    """

    def __init__(self, rows: int, cols: int, latent_size: int, decoder_name: str, decoders: nn.ModuleDict):
        super().__init__()
        if decoders[decoder_name].output_size != cols:
            raise ValueError(f"decoder {decoder_name!r} outputs rows of {decoders[decoder_name].output_size}, the matrix has {cols} columns")
        self.shape = (rows, cols)
        self.decoder_name = decoder_name
        self.codes = nn.Parameter(torch.zeros(rows, latent_size))
        self.register_buffer("row_scales", torch.ones(rows))
        self.__dict__["_shared_decoders"] = decoders  # bypasses nn.Module registration on purpose (see docstring)

    @property
    def decoder(self) -> RowDecoder:
        return self._shared_decoders[self.decoder_name]

    def stored_tensors(self) -> list[torch.Tensor]:
        return [self.codes, self.row_scales, *self.decoder.parameters()]

    def rows_for(self, ids: torch.Tensor, padding_idx: int | None = None) -> torch.Tensor:
        """The decoded rows `ids` ([...] long) only: [..., cols]; the training path of an embedding, where the
        padding row's code gets no gradient, as in `nn.Embedding`."""
        return decode_rows(self.decoder, F.embedding(ids, self.codes, padding_idx), self.row_scales[ids])

    def forward(self) -> torch.Tensor:
        return decode_rows(self.decoder, self.codes, self.row_scales)


class KroneckerSumWeight(nn.Module):
    """A weight matrix [rows, cols] as sum_j A_j (x) B_j, j = 1..terms, every factor [p, q] = `factor_shape` (the
    paper's baseline uses p = ceil(sqrt(rows)), q = ceil(sqrt(cols))); the [p^2, q^2] sum is cropped to the matrix.

    Stored as `first_factors` [p q, terms] (column j = A_j flattened) and `second_factors` [terms, p q] (row j = B_j
    flattened): their product is the Van Loan-Pitsianis rearrangement of the matrix, entry ((i1, j1), (i2, j2)) =
    W[i1 p + i2, j1 q + j2], so a truncated SVD of the rearranged matrix gives the best sum in Frobenius norm.
    """

    def __init__(self, rows: int, cols: int, terms: int, factor_shape: list[int]):
        super().__init__()
        p, q = factor_shape
        if p * p < rows or q * q < cols:
            raise ValueError(f"Kronecker factors {p} x {q} cannot cover a {rows} x {cols} matrix ({p * p} x {q * q} < it)")
        self.shape, self.factor_shape = (rows, cols), (p, q)
        self.first_factors = nn.Parameter(torch.zeros(p * q, terms))
        self.second_factors = nn.Parameter(torch.zeros(terms, p * q))

    def stored_tensors(self) -> list[torch.Tensor]:
        return [self.first_factors, self.second_factors]

    def forward(self) -> torch.Tensor:
        (p, q), (rows, cols) = self.factor_shape, self.shape
        rearranged = (self.first_factors @ self.second_factors).view(p, q, p, q)  # [i1, j1, i2, j2]
        return rearranged.permute(0, 2, 1, 3).reshape(p * p, q * q)[:rows, :cols]  # [i1 p + i2, j1 q + j2]

    def linear_macs(self) -> int:
        """Multiply-adds per input row of `apply_linear`: terms x (p q^2 + p^2 q)."""
        (p, q), terms = self.factor_shape, self.first_factors.shape[1]
        return terms * p * q * (p + q)

    def linear_operands(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The factors as [terms, p, q] stacks: A_j[i1, j1] and B_j[i2, j2] (views, nothing computed)."""
        p, q = self.factor_shape
        return self.first_factors.T.reshape(-1, p, q), self.second_factors.view(-1, p, q)

    def apply_linear(self, hidden: torch.Tensor, operands: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """hidden @ W^T without forming W: each input row, zero-padded to q^2 and viewed as X [q, q] (entry (j1, j2)),
        maps to sum_j A_j X B_j^T [p, p], whose entry (i1, i2) is output i1 p + i2."""
        (p, q), (rows, cols) = self.factor_shape, self.shape
        first, second = operands
        inputs = F.pad(hidden, (0, q * q - cols)).reshape(-1, q, q)  # [T, j1, j2]
        right = torch.einsum("tab,rib->trai", inputs, second)  # X B_j^T: [T, terms, j1, i2]
        out = torch.einsum("rha,trai->thi", first, right)  # sum_j A_j (X B_j^T): [T, i1, i2]
        return out.reshape(*hidden.shape[:-1], p * p)[..., :rows]


class TuckerWeight(nn.Module):
    """A weight matrix [rows, cols] cut into blocks of `block_rows` rows (zero-padded at the end), the tensor
    [blocks, block_rows, cols] stored in Tucker form: `core` [r1, r2, r3] and one factor per mode, `block_factor`
    [blocks, r1], `row_factor` [block_rows, r2], `column_factor` [cols, r3].

    With block_rows = head size, an attention projection's blocks are its heads, the paper's layout for Q/K/V.
    """

    def __init__(self, rows: int, cols: int, block_rows: int, ranks: list[int]):
        super().__init__()
        dims = (math.ceil(rows / block_rows), block_rows, cols)
        if any(rank > dim for rank, dim in zip(ranks, dims)):
            raise ValueError(f"Tucker ranks {list(ranks)} exceed the tensor's mode sizes {list(dims)}")
        self.shape = (rows, cols)
        self.core = nn.Parameter(torch.zeros(*ranks))
        self.block_factor = nn.Parameter(torch.zeros(dims[0], ranks[0]))
        self.row_factor = nn.Parameter(torch.zeros(dims[1], ranks[1]))
        self.column_factor = nn.Parameter(torch.zeros(dims[2], ranks[2]))

    def stored_tensors(self) -> list[torch.Tensor]:
        return [self.core, self.block_factor, self.row_factor, self.column_factor]

    def forward(self) -> torch.Tensor:
        tensor = torch.einsum("abc,kc->abk", self.core, self.column_factor)  # [r1, r2, cols]
        tensor = torch.einsum("abk,jb->ajk", tensor, self.row_factor)  # [r1, block_rows, cols]
        tensor = torch.einsum("ajk,ia->ijk", tensor, self.block_factor)  # [blocks, block_rows, cols]
        return tensor.reshape(-1, tensor.shape[-1])[: self.shape[0]]

    def linear_macs(self) -> int:
        """Multiply-adds per input row of `apply_linear`: (rows + cols) r3."""
        return sum(self.shape) * self.column_factor.shape[1]

    def linear_operands(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(the core's mode products with the block and row factors, [rows, r3]; the column factor [cols, r3])."""
        left = torch.einsum("abc,ia,jb->ijc", self.core, self.block_factor, self.row_factor)  # [blocks, block_rows, r3]
        return left.reshape(-1, left.shape[-1])[: self.shape[0]], self.column_factor

    def apply_linear(self, hidden: torch.Tensor, operands: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """hidden @ W^T as two mode products: onto the column factor ([..., r3]), then through the folded rest."""
        left, column_factor = operands
        return F.linear(hidden @ column_factor, left)


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A bool tensor as uint8 bytes, 8 entries per byte (entry i in bit i % 8 of byte i // 8), zero-padded."""
    flat = F.pad(mask.flatten().to(torch.uint8), (0, -mask.numel() % 8)).view(-1, 8)
    return (flat << torch.arange(8, dtype=torch.uint8, device=mask.device)).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """The first `numel` entries of a `pack_bits` result, as a flat bool tensor."""
    bits = (packed[:, None] >> torch.arange(8, dtype=torch.uint8, device=packed.device)) & 1
    return bits.flatten()[:numel].bool()


class SparseWeight(nn.Module):
    """A pruned weight matrix [rows, cols] stored sparsely: its kept entries (`values`, in row-major order) and
    where they sit (`mask_bits`, the bool mask packed 8 entries per byte by `pack_bits`). Only kept entries are
    parameters, so training updates them and pruned entries stay zero by construction.

    The unpacked bool mask is kept (one byte per entry) and checked against `values` once per change of
    `mask_bits`, so a training step neither unpacks it again nor waits on the device for the check.
    """

    def __init__(self, rows: int, cols: int, kept: int):
        super().__init__()
        if kept > rows * cols:
            raise ValueError(f"a pruned {rows} x {cols} matrix cannot keep {kept} entries")
        self.shape = (rows, cols)
        self.values = nn.Parameter(torch.zeros(kept))
        self.register_buffer("mask_bits", torch.zeros(math.ceil(rows * cols / 8), dtype=torch.uint8))
        self._mask: torch.Tensor | None = None
        self._mask_key: tuple | None = None

    def stored_tensors(self) -> list[torch.Tensor]:
        return [self.values, self.mask_bits]

    def mask(self) -> torch.Tensor:
        """The `[rows, cols]` bool mask of kept entries; a ValueError if it does not mark one entry per value."""
        bits = self.mask_bits
        key = (id(bits), bits.data_ptr(), bits._version, bits.device, self.values.numel())
        if self._mask_key != key:
            # An ordinary tensor even under inference_mode, so a later training step can save it for backward.
            with torch.inference_mode(False):
                mask = unpack_bits(bits, self.shape[0] * self.shape[1]).view(self.shape)
            kept = int(mask.sum())
            if kept != self.values.numel():
                raise ValueError(f"the pruning mask marks {kept} entries but {self.values.numel()} values are stored")
            self._mask, self._mask_key = mask, key
        return self._mask

    def forward(self) -> torch.Tensor:
        return self.values.new_zeros(self.shape).masked_scatter(self.mask(), self.values)


class MaterializedWeightMixin:
    """A module that computes with tensors built from `self.factors` (an `AutoencoderWeight`, `KroneckerSumWeight`,
    `TuckerWeight` or `SparseWeight`): its dense weight, or the operands of a factorised product.

    In training, and whenever gradients may reach the factors, they are rebuilt on every forward. In eval mode with
    no gradient to the factors (`torch.no_grad()`, `torch.inference_mode()`, or frozen factors) they are built once
    and cached, so inference pays the decoder, the factor product or the scatter once instead of on every call. A
    cached dense weight costs the dense matrix's memory (rows x cols floats, e.g. 30522 x 768 x 4 bytes = 94 MB for
    BERT-base word embeddings): the checkpoint stays compressed, the running footprint is the dense model's. The
    cache is rebuilt when any stored tensor changes (an optimizer step or `load_state_dict` bumps the tensor's
    version; `.to()` replaces it) and dropped on `train()`.
    """

    _cached: torch.Tensor | tuple | None = None
    _cache_key: tuple | None = None

    def _weight_state(self) -> tuple:
        return tuple((id(t), t.data_ptr(), t._version, t.device, t.dtype) for t in self.factors.stored_tensors())

    def rebuilds_every_forward(self) -> bool:
        """True in training or when gradients may reach the stored tensors: then the cache must not be used."""
        return self.training or (torch.is_grad_enabled() and any(t.requires_grad for t in self.factors.stored_tensors()))

    def cached(self, build):
        """`build()` (tensors computed from the factors), from the cache when the module may use it."""
        if self.rebuilds_every_forward():
            return build()
        state = self._weight_state()
        if self._cached is None or self._cache_key != state:
            # Built as ordinary tensors even under inference_mode, so later no_grad calls can use them too.
            with torch.inference_mode(False), torch.no_grad():
                self._cached, self._cache_key = build(), state
        return self._cached

    def dense_weight(self) -> torch.Tensor:
        """The dense weight, from the cache when the module may use it."""
        return self.cached(self.factors)

    def train(self, mode: bool = True):
        self._cached = self._cache_key = None
        return super().train(mode)


def factorised_forward_is_cheaper(factors: nn.Module) -> bool:
    """Whether `factors` multiply an input row with fewer multiply-adds than its dense [rows, cols] weight does.

    Only Kronecker sums and Tucker forms have a factorised product. A Kronecker sum of r terms of p x q factors costs
    r p q (p + q) per row, so it beats the dense weight only when r < rows cols / (p q (p + q)): about 10 terms on a
    384 x 384 matrix, where ratio 3 gives 61 and ratio 10 gives 18. A Tucker form costs (rows + cols) r3, fewer than
    rows cols whenever it stores less than the matrix. Pruned weights keep the dense path: at a third of the entries,
    unstructured sparse kernels do not beat a dense matmul, and autoencoder rows come only from decoding them all.
    """
    return hasattr(factors, "linear_macs") and factors.linear_macs() < factors.shape[0] * factors.shape[1]


class FactoredLinear(MaterializedWeightMixin, nn.Module):
    """A linear layer computed from `factors`: through their own product when that costs fewer multiply-adds per
    token (`factorised`, see `factorised_forward_is_cheaper`), otherwise with their dense weight; either way with
    the eval cache of `MaterializedWeightMixin`."""

    def __init__(self, factors: nn.Module, bias: bool = True):
        super().__init__()
        self.factors = factors
        self.bias = nn.Parameter(torch.zeros(factors.shape[0])) if bias else None
        self.factorised = factorised_forward_is_cheaper(factors)

    @property
    def in_features(self) -> int:
        return self.factors.shape[1]

    @property
    def out_features(self) -> int:
        return self.factors.shape[0]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.factorised:
            return F.linear(hidden, self.dense_weight(), self.bias)
        out = self.factors.apply_linear(hidden, self.cached(self.factors.linear_operands))
        return out if self.bias is None else out + self.bias


class FactoredEmbedding(MaterializedWeightMixin, nn.Module):
    """An embedding table rebuilt from `factors` (see `MaterializedWeightMixin`). An autoencoder table decodes only
    the looked-up rows when it cannot use the cache, not the whole vocabulary."""

    def __init__(self, factors: nn.Module, padding_idx: int | None = None):
        super().__init__()
        self.factors = factors
        self.padding_idx = padding_idx

    @property
    def num_embeddings(self) -> int:
        return self.factors.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.factors.shape[1]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if isinstance(self.factors, AutoencoderWeight) and self.rebuilds_every_forward():
            return self.factors.rows_for(input_ids, self.padding_idx)
        return F.embedding(input_ids, self.dense_weight(), self.padding_idx)


def factored_weight(rows: int, cols: int, spec: dict, decoders: nn.ModuleDict | None) -> nn.Module:
    """The factors of a [rows, cols] weight stored as `spec` says (any kind but low-rank)."""
    if spec["kind"] == "pruned":
        return SparseWeight(rows, cols, spec["kept"])
    if spec["kind"] == "autoencoder":
        return AutoencoderWeight(rows, cols, spec["latent_size"], spec["decoder"], decoders)
    if spec["kind"] == "kronecker":
        return KroneckerSumWeight(rows, cols, spec["terms"], spec["factor_shape"])
    return TuckerWeight(rows, cols, spec["block_rows"], spec["ranks"])


def compressed_module(original: nn.Module, spec: dict, decoders: nn.ModuleDict | None = None) -> nn.Module:
    """The compressed replacement of `original` described by `spec` (see `CompressedBertConfig`), uninitialised."""
    kind = spec["kind"]
    if isinstance(original, nn.Embedding):
        if kind == "low_rank":
            return LowRankEmbedding(original.num_embeddings, original.embedding_dim, spec["rank"], original.padding_idx)
        factors = factored_weight(original.num_embeddings, original.embedding_dim, spec, decoders)
        return FactoredEmbedding(factors, original.padding_idx)
    if isinstance(original, nn.Linear):
        bias = original.bias is not None
        if kind == "low_rank":
            return LowRankLinear(original.in_features, original.out_features, spec["rank"], bias)
        return FactoredLinear(factored_weight(original.out_features, original.in_features, spec, decoders), bias)
    raise ValueError(f"cannot compress a {type(original).__name__} as {kind!r}")


def swap_compressed_modules(bert: BertModel, config: CompressedBertConfig) -> None:
    """Replace the modules named in `config.compressed_modules` by their compressed form; autoencoder decoders go
    once into `bert.compressed_decoders` (state-dict keys `compressed_decoders.<name>.layers.<i>.*`)."""
    if config.compressed_decoders:
        bert.compressed_decoders = nn.ModuleDict(
            {name: RowDecoder(**spec) for name, spec in config.compressed_decoders.items()}
        )
    decoders = getattr(bert, "compressed_decoders", None)
    for path, spec in (config.compressed_modules or {}).items():
        parent_path, _, name = path.rpartition(".")
        try:
            original = bert.get_submodule(path)
        except AttributeError:
            raise ValueError(
                f"compressed_modules[{path!r}] names no module of the model; allowed: module paths inside the base "
                "model such as 'encoder.layer.0.attention.self.key' or 'embeddings.word_embeddings'"
            ) from None
        setattr(bert.get_submodule(parent_path), name, compressed_module(original, spec, decoders))


class CompressedBertModel(HubCheckpointMixin, PackedBertModel):
    """`PackedBertModel` (HF's BERT, inference on the packed token engine: see `inference_engine`) with compressed
    modules: a batch costs what its tokens cost, and the compressed modules' savings are not spent on padding."""

    config_class = CompressedBertConfig

    def __init__(self, config: CompressedBertConfig, add_pooling_layer: bool = True):
        super().__init__(config, add_pooling_layer=add_pooling_layer)
        swap_compressed_modules(self, config)


class CompressedBertHeadMixin(PackedBertHeadMixin):
    base_model_class = CompressedBertModel


class CompressedBertForSequenceClassification(CompressedBertHeadMixin, HubCheckpointMixin, BertForSequenceClassification):
    config_class = CompressedBertConfig


class CompressedBertForQuestionAnswering(CompressedBertHeadMixin, HubCheckpointMixin, BertForQuestionAnswering):
    config_class = CompressedBertConfig


class CompressedBertForTokenClassification(CompressedBertHeadMixin, HubCheckpointMixin, BertForTokenClassification):
    config_class = CompressedBertConfig


__all__ = [
    "AutoencoderWeight",
    "CompressedBertForQuestionAnswering",
    "CompressedBertForSequenceClassification",
    "CompressedBertForTokenClassification",
    "CompressedBertModel",
    "FactoredEmbedding",
    "FactoredLinear",
    "KroneckerSumWeight",
    "LowRankEmbedding",
    "LowRankLinear",
    "RowDecoder",
    "SparseWeight",
    "TuckerWeight",
]
