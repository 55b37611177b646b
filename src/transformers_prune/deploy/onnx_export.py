"""ONNX export of a model (`torch.onnx.export`, dynamo), ONNX Runtime dynamic int8, OpenVINO, and the export folder.

An export folder holds everything `runner.py` (copied into it) needs, and nothing that needs torch:

| file | what |
|---|---|
| `model.onnx` | the fp32 graph (format "onnx") |
| `model_int8.onnx` | with `int8=True`: ONNX Runtime `quantize_dynamic` of it (int8 weights, per channel by default; activations quantized per call) |
| `openvino_model.xml/.bin` | format "openvino": the same ONNX graph converted to OpenVINO's IR (fp32 weights) |
| `openvino_model_int8.xml/.bin` | format "openvino" with `int8=True`: NNCF's weight compression of it (int8 weights, asymmetric, one scale per output channel; activations stay fp32, so the graph's token decisions see fp32 scores; needs no calibration data) |
| `tokenizer.json` | the checkpoint's fast tokenizer, padding to the longest text of a batch, no truncation |
| `export_config.json` | graph kind, head, output names, vocabulary sizes, `max_length`, labels, the export's own check |
| `runner.py` | the torch-free runner (`deploy/runner.py`) |

The folder is written next to its destination and moved there at the end (`folders.staged_output_folder`, as
every command), so a failed export leaves nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import warnings

import torch
from torch import nn

from ..folders import staged_output_folder
from ..models.modeling_token_pruning import TokenPruningModel
from . import INT8_WEIGHTS, PER_CHANNEL, runner
from .traceable import INPUT_NAMES, PaddedGraph, SingleExampleGraph, dense_inference_copy, head_of

ONNX_FILE, INT8_FILE = "model.onnx", "model_int8.onnx"
OPENVINO_FILE, OPENVINO_INT8_FILE = "openvino_model.xml", "openvino_model_int8.xml"
FORMATS = ("onnx", "openvino")
# fp32 export against torch on the export's check inputs, relative to the outputs' scale (at least 1): the order of
# float sums differs, nothing else.
EXPORT_TOLERANCE = 1e-4


@contextlib.contextmanager
def _quiet_exporter():
    """Hide the exporter's progress lines and the warnings torch.export raises on HF code; errors still surface."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnx_ir", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_onnx(graph: nn.Module, path: str, example: dict[str, torch.Tensor], max_length: int, dynamic_batch: bool = True) -> None:
    """Write `graph` (a module of `INPUT_NAMES` returning a tuple named by `graph.output_names`) to `path`.

    `example` traces it; its sizes must not be 0 or 1 where the dimension is dynamic (torch.export would
    specialise them). The sequence dimension is dynamic up to `max_length`; the batch dimension when
    `dynamic_batch`, else fixed to the example's.
    """
    sequence = torch.export.Dim("sequence", min=1, max=max_length)
    axes = {0: torch.export.Dim("batch", min=1), 1: sequence} if dynamic_batch else {1: sequence}
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            graph,
            tuple(example[name] for name in INPUT_NAMES),
            input_names=list(INPUT_NAMES),
            output_names=list(graph.output_names),
            dynamic_shapes={name: axes for name in INPUT_NAMES},
            dynamo=True,
            verbose=False,
        )
        program.save(path)


def quantize_onnx_int8(source: str, target: str, weights: str = PER_CHANNEL) -> None:
    """ONNX Runtime dynamic quantization: int8 weights (QInt8) scaled per output channel or per matrix (`weights`,
    one of `INT8_WEIGHTS`), activations quantized per call (CPU).

    Per channel is the default because it keeps accuracy where per-matrix scales lose it: on the trained SST-2 LTP
    checkpoint (872 dev sentences) the int8 graph scores 88.30 per channel, as its fp32 graph
    (docs/results/sst2-ltp-int8-per-channel), and 87.16 per matrix (docs/results/frontier-sst2). Its cost in speed is
    not established: one-off probes read it from 11% slower (SST-2, batch 1, one thread beside a training job) to 5%
    faster (IMDB, batch 1, 2 threads, the two graphs interleaved).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _check_int8_weights(weights)
    root = logging.getLogger()
    disabled, root.disabled = root.disabled, True  # it logs a "consider pre-processing" note to the root logger
    try:
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=weights == PER_CHANNEL)
    finally:
        root.disabled = disabled


def _check_int8_weights(weights: str) -> None:
    if weights not in INT8_WEIGHTS:
        raise ValueError(f"int8 weights are scaled {' or '.join(INT8_WEIGHTS)}, got {weights!r}")


def check_inputs(tokenizer, config, lengths: tuple[int, ...], seed: int = 0) -> dict[str, torch.Tensor]:
    """A right-padded `[len(lengths), max(lengths)]` batch of random token ids between [CLS] and [SEP], two
    segments, for tracing and checking an export (values do not matter to a dense graph)."""
    generator = torch.Generator().manual_seed(seed)
    seq_len = max(lengths)
    input_ids = torch.randint(0, config.vocab_size, (len(lengths), seq_len), generator=generator)
    attention_mask = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    token_type_ids = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    for row, length in enumerate(lengths):
        attention_mask[row, :length] = 1
        token_type_ids[row, length // 2 : length] = 1 if config.type_vocab_size > 1 else 0
        input_ids[row, 0] = tokenizer.cls_token_id
        input_ids[row, length - 1] = tokenizer.sep_token_id
    input_ids = input_ids.masked_fill(attention_mask == 0, tokenizer.pad_token_id)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def compare_with_torch(model: nn.Module, exported: runner.ExportedModel, batches: list[dict]) -> tuple[float, float]:
    """The largest absolute difference between the exported graph (through `exported`) and the torch model itself
    over `batches`, on real positions (a packed model leaves padding positions as zeros, HF's BERT computes them),
    and the largest absolute output value. Raises ValueError if the graph keeps other token counts per layer."""
    worst, scale = 0.0, 0.0
    for batch in batches:
        with torch.no_grad():
            expected = model(**batch, return_dict=True)
        got = exported(**{name: tensor.numpy() for name, tensor in batch.items()})
        real = batch["attention_mask"].bool().numpy()
        for name in exported.output_names:
            reference = expected[name].numpy()
            if name == "tokens_per_layer":
                if not (got[name] == reference).all():
                    raise ValueError(f"the exported graph keeps {got[name].tolist()} tokens per layer, the torch model {reference.tolist()}")
                continue
            difference = abs(got[name] - reference)
            if difference.shape[:2] == real.shape:
                difference, reference = difference[real], reference[real]
            worst, scale = max(worst, float(difference.max())), max(scale, float(abs(reference).max()))
    return worst, scale


def _save_tokenizer(tokenizer, path: str) -> None:
    """The fast tokenizer's `tokenizer.json`, set to pad to the longest text of a batch and not to truncate."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"export needs a fast tokenizer (tokenizer.json); {type(tokenizer).__name__} is not one")
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token, pad_type_id=0, direction="right")
    backend.save(path)


def _export_config(model: nn.Module, head: str, graph_kind: str, output_names, max_length: int, files: dict, format: str) -> dict:
    config = model.config
    return {
        "format": format,
        "graph": graph_kind,
        "model_type": type(config).model_type,  # the class's: a config loaded from a BERT folder keeps "bert"
        "architecture": type(model).__name__,
        "head": head,
        "inputs": list(INPUT_NAMES),
        "outputs": list(output_names),
        "max_length": max_length,
        "vocab_size": config.vocab_size,
        "type_vocab_size": config.type_vocab_size,
        "num_hidden_layers": config.num_hidden_layers,
        "id2label": {str(index): label for index, label in config.id2label.items()},
        "files": files,
    }


def export_folder(
    model: nn.Module, tokenizer, output_dir: str, int8: bool = False, max_length: int | None = None,
    overwrite: bool = False, inputs: tuple[str, ...] = (), int8_weights: str = PER_CHANNEL, format: str = "onnx",
) -> dict:
    """Export `model` (eval, on CPU, any of our types or HF BERT) with `tokenizer` into `output_dir` (see module
    docstring) in `format` ("onnx": ONNX Runtime; "openvino": OpenVINO IR), whole or not at all
    (`folders.staged_output_folder`; `overwrite` replaces a non-empty folder, `inputs` are paths the output must not
    be or hold). With `int8`, the int8 graph's weights are scaled `int8_weights` (`quantize_onnx_int8`; OpenVINO's
    weight compression is per channel only).

    Returns the written `export_config.json`, whose "check" entry holds the largest absolute difference between
    the fp32 graph in its runtime and the torch model on random inputs. Raises ValueError for a `max_length`
    beyond the model's positions, when that difference exceeds `EXPORT_TOLERANCE` x max(1, largest output), and
    when the graph keeps other token counts per layer than the torch model; nothing is written then.
    """
    positions = model.config.max_position_embeddings
    if model.training:
        raise ValueError("the model is in training mode (dropout active, training-time token selection): call model.eval() before exporting")
    max_length = positions if max_length is None else max_length
    if not 2 <= max_length <= positions:
        raise ValueError(f"max_length must be between 2 and the model's {positions} positions, got {max_length}")
    _check_int8_weights(int8_weights)
    if format not in FORMATS:
        raise ValueError(f"export format must be one of {FORMATS}, got {format!r}")
    if format == "openvino" and int8 and int8_weights != PER_CHANNEL:
        raise ValueError(f"OpenVINO's int8 export compresses weights per channel; int8 weights {int8_weights!r} are ONNX Runtime's")
    with staged_output_folder(output_dir, overwrite, inputs) as staged:
        return _write_folder(model, tokenizer, staged, int8_weights if int8 else None, max_length, format)


def export_graph(model: nn.Module) -> tuple[nn.Module, str]:
    """The traceable forward of `model` and its kind: `SingleExampleGraph` for a token-pruning model (it drops
    tokens), `PaddedGraph` for a dense one (see `traceable.py`)."""
    copy = dense_inference_copy(model)
    if isinstance(model.base_model, TokenPruningModel):
        return SingleExampleGraph(copy), runner.SINGLE_EXAMPLE
    return PaddedGraph(copy), runner.PADDED


def convert_to_openvino(onnx_path: str, folder: str, int8: bool) -> dict[str, str]:
    """The ONNX graph at `onnx_path` as OpenVINO IR in `folder` (fp32 weights), and with `int8` NNCF's int8 weight
    compression of it (see module docstring); removes `onnx_path`. Returns the files by precision."""
    import nncf
    import openvino

    graph = openvino.convert_model(onnx_path)
    openvino.save_model(graph, os.path.join(folder, OPENVINO_FILE), compress_to_fp16=False)
    files = {"fp32": OPENVINO_FILE}
    if int8:
        with _quiet_exporter():  # NNCF's progress bars and bit-width table
            compressed = nncf.compress_weights(graph, mode=nncf.CompressWeightsMode.INT8_ASYM)
        openvino.save_model(compressed, os.path.join(folder, OPENVINO_INT8_FILE), compress_to_fp16=False)
        files["int8"] = OPENVINO_INT8_FILE
    os.remove(onnx_path)
    return files


def _write_folder(model: nn.Module, tokenizer, folder: str, int8_weights: str | None, max_length: int, format: str) -> dict:
    graph, graph_kind = export_graph(model)
    short = min(max_length, 16)
    trace_lengths = (short, short // 2 + 1) if graph_kind == runner.PADDED else (short,)
    onnx_path = os.path.join(folder, ONNX_FILE)
    export_onnx(
        graph, onnx_path, check_inputs(tokenizer, model.config, trace_lengths), max_length,
        dynamic_batch=graph_kind == runner.PADDED,
    )
    if format == "openvino":
        files = convert_to_openvino(onnx_path, folder, int8=bool(int8_weights))
    else:
        if int8_weights:
            quantize_onnx_int8(onnx_path, os.path.join(folder, INT8_FILE), int8_weights)
        files = {"fp32": ONNX_FILE, **({"int8": INT8_FILE} if int8_weights else {})}
    _save_tokenizer(tokenizer, os.path.join(folder, runner.TOKENIZER_FILE))
    shutil.copy2(runner.__file__, os.path.join(folder, "runner.py"))
    config = _export_config(model, head_of(model), graph_kind, graph.output_names, max_length, files, format)
    if int8_weights:
        config["int8_weights"] = int8_weights
    _write_json(config, os.path.join(folder, runner.CONFIG_FILE))
    lengths = ((short, max(2, short - 3), 2), (max(2, short // 3),))  # every input holds [CLS] and [SEP]
    batches = [check_inputs(tokenizer, model.config, batch_lengths, seed) for seed, batch_lengths in enumerate(lengths)]
    difference, scale = compare_with_torch(model, runner.ExportedModel(folder), batches)
    if difference > EXPORT_TOLERANCE * max(1.0, scale):
        raise ValueError(
            f"the exported graph differs from the torch model by {difference:.3g} on random inputs (outputs up to "
            f"{scale:.3g}; allowed {EXPORT_TOLERANCE} x max(1, that))"
        )
    config["check"] = {"max_abs_difference_fp32": difference, "lengths": [list(batch_lengths) for batch_lengths in lengths]}
    _write_json(config, os.path.join(folder, runner.CONFIG_FILE))
    return config


def _write_json(value: dict, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)


__all__ = [
    "EXPORT_TOLERANCE",
    "FORMATS",
    "OPENVINO_FILE",
    "OPENVINO_INT8_FILE",
    "convert_to_openvino",
    "INT8_FILE",
    "ONNX_FILE",
    "check_inputs",
    "compare_with_torch",
    "export_folder",
    "export_graph",
    "export_onnx",
    "quantize_onnx_int8",
]
