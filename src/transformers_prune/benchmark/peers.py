"""ONNX Runtime rows: the peers a user would deploy instead (the dense model, fp32 and dynamic int8), and with
`--export-methods` our own token-pruning and compressed models exported the same way.

The benchmark exports each model itself (`transformers-prune export`'s `export_folder`: torch.onnx dynamo,
ONNX Runtime `quantize_dynamic` with int8 weights) and runs it through the export's torch-free runner on
`CPUExecutionProvider` with the benchmark's thread count, on the same dynamically padded batches as every other
row. The dense peers export the `hf_dynamic` model (same weights and head): HF's padded graph, whole batches.
A token-pruning model exports its token-dropping graph, which the runner feeds one example at a time.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from types import SimpleNamespace

import torch

from ..deploy import PER_CHANNEL, PER_TENSOR

ORT_FP32, ORT_INT8 = "ort_fp32", "ort_int8"
# A method row's ONNX Runtime rows: "<model type>" + suffix.
ORT_SUFFIXES = {"fp32": "+ort_fp32", "int8": "+ort_int8"}
# int8 weight scales (`deploy.INT8_WEIGHTS`): the dense peer as a user quantizes it, with `quantize_dynamic`'s
# defaults (one scale per matrix); our exported methods as `transformers-prune export --int8` writes them (one per
# output channel, which keeps accuracy).
PEER_INT8_WEIGHTS, EXPORT_INT8_WEIGHTS = PER_TENSOR, PER_CHANNEL
PEER_VARIANTS = (ORT_FP32, ORT_INT8)
PEER_CHOICES = ("ort", "none")


def check_peers_available(peers: str, device: torch.device) -> None:
    """Raise ValueError when `--peers ort` cannot run here: no onnxruntime, or a non-CPU benchmark device."""
    if peers == "none":
        return
    if device.type != "cpu":
        raise ValueError(f"the ONNX Runtime peer rows run on CPU; with --device {device} pass --peers none")
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ValueError(
            f"the ONNX Runtime peer rows need the onnx extra ({error}): pip install 'transformers_prune[onnx]', "
            "or pass --peers none"
        ) from error


class OrtModel:
    """An exported model in ONNX Runtime (through the export's own runner, input checks included), called like a HF
    model: `model(**batch)` with torch tensors, outputs as attributes."""

    device = torch.device("cpu")

    def __init__(self, runner, config):
        self.runner = runner
        self.config = config

    def eval(self):
        return self

    def __call__(self, **batch) -> SimpleNamespace:
        outputs = self.runner(**{name: tensor.numpy() for name, tensor in batch.items()})
        return SimpleNamespace(**{name: torch.from_numpy(value) for name, value in outputs.items()})


@contextlib.contextmanager
def onnx_runtime_models(model, tokenizer, max_length: int, threads: int | None, int8_weights: str):
    """`{"fp32": OrtModel, "int8": OrtModel}` of `model` exported (`export_folder`, with int8 weights scaled
    `int8_weights`) into a temporary folder, removed on exit: the padded graph of a dense model, the token-dropping
    graph of a token-pruning one."""
    from ..deploy.onnx_export import export_folder
    from ..deploy.ort_runner import ExportedModel

    threads = threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as folder:
        export_dir = os.path.join(folder, "export")
        export_folder(model, tokenizer, export_dir, int8=True, max_length=max_length, int8_weights=int8_weights)
        yield {precision: OrtModel(ExportedModel(export_dir, precision, threads), model.config) for precision in ("fp32", "int8")}


__all__ = ["EXPORT_INT8_WEIGHTS", "PEER_INT8_WEIGHTS", "ORT_FP32", "ORT_INT8", "ORT_SUFFIXES", "PEER_CHOICES", "PEER_VARIANTS", "OrtModel", "check_peers_available", "onnx_runtime_models"]
