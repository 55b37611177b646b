"""What a user would deploy instead, measured in the same run: ONNX Runtime fp32 and dynamic int8 of the dense model.

The benchmark exports the checkpoint's HF BERT (the `hf_dynamic` model, same weights and head) itself with
`torch.onnx.export` (dynamo), quantizes it with ONNX Runtime's `quantize_dynamic` (int8 weights), and runs both on
`CPUExecutionProvider` with the benchmark's thread count, on the very batches `hf_dynamic` gets (dynamic padding).
`OrtModel` puts a session behind the interface the runner times (`model(**batch)` on torch tensors).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from types import SimpleNamespace

import torch

ORT_FP32, ORT_INT8 = "ort_fp32", "ort_int8"
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
    """An ONNX Runtime session called like a HF model: `model(**batch)` with torch tensors, outputs as attributes."""

    device = torch.device("cpu")

    def __init__(self, session, output_names: tuple[str, ...], config):
        self.session = session
        self.output_names = list(output_names)
        self.config = config
        self.input_names = [node.name for node in session.get_inputs()]

    def eval(self):
        return self

    def __call__(self, **batch) -> SimpleNamespace:
        feeds = {name: batch[name].numpy() for name in self.input_names}
        outputs = self.session.run(self.output_names, feeds)
        return SimpleNamespace(**{name: torch.from_numpy(value) for name, value in zip(self.output_names, outputs)})


@contextlib.contextmanager
def ort_peer_models(hf_model, tokenizer, max_length: int, threads: int | None):
    """`{ORT_FP32: OrtModel, ORT_INT8: OrtModel}` of `hf_model`, exported into a temporary folder removed on exit."""
    from ..deploy.onnx_export import check_inputs, export_onnx, ort_session, quantize_onnx_int8
    from ..deploy.traceable import PaddedGraph, dense_inference_copy

    graph = PaddedGraph(dense_inference_copy(hf_model))
    short = min(max_length, 16)
    threads = threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as folder:
        fp32, int8 = os.path.join(folder, "model.onnx"), os.path.join(folder, "model_int8.onnx")
        export_onnx(graph, fp32, check_inputs(tokenizer, hf_model.config, (short, short // 2 + 1)), max_length)
        quantize_onnx_int8(fp32, int8)
        yield {
            variant: OrtModel(ort_session(path, threads), graph.output_names, hf_model.config)
            for variant, path in ((ORT_FP32, fp32), (ORT_INT8, int8))
        }


__all__ = ["ORT_FP32", "ORT_INT8", "PEER_CHOICES", "PEER_VARIANTS", "OrtModel", "check_peers_available", "ort_peer_models"]
