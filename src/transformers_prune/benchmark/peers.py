"""Peer rows: the runtimes a user would deploy the dense model on instead, and with `--export-methods` our own
token-pruning and compressed models exported to ONNX Runtime.

- ONNX Runtime (`--peers ort`): the benchmark exports the model itself (`transformers-prune export`'s
  `export_folder`: torch.onnx dynamo, ONNX Runtime `quantize_dynamic` with int8 weights) and runs it through the
  export's torch-free runner on `CPUExecutionProvider` with the benchmark's thread count.
- OpenVINO (`--peers openvino`): the same ONNX graph read by OpenVINO, fp32, and int8 by NNCF's post-training
  quantization (static: int8 weights and activations, `ModelType.TRANSFORMER`, calibrated on
  `CALIBRATION_EXAMPLES` inputs of the task's training file, one input per sample), compiled for its CPU plugin
  with the benchmark's thread count. This is what sentence-transformers' and optimum-intel's OpenVINO int8
  exports do, the fastest CPU route their public benchmarks show for BERT-family encoders.

Every peer runs on the same dynamically padded batches as every other row. The dense peers export the
`hf_dynamic` model (same weights and head): HF's padded graph, whole batches. A token-pruning model exports its
token-dropping graph, which the ONNX Runtime runner feeds one example at a time.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from types import SimpleNamespace

import torch

from ..deploy import PER_CHANNEL, PER_TENSOR

ORT_FP32, ORT_INT8 = "ort_fp32", "ort_int8"
OV_FP32, OV_INT8 = "ov_fp32", "ov_int8"
# A method row's exported rows (`--export-methods`): "<model type>" + suffix, per export format.
EXPORT_SUFFIXES = {
    "onnx": {"fp32": "+ort_fp32", "int8": "+ort_int8"},
    "openvino": {"fp32": "+ov_fp32", "int8": "+ov_int8"},
}
# int8 weight scales (`deploy.INT8_WEIGHTS`): the dense peer as a user quantizes it, with `quantize_dynamic`'s
# defaults (one scale per matrix); our exported methods as `transformers-prune export --int8` writes them (one per
# output channel, which keeps accuracy).
PEER_INT8_WEIGHTS, EXPORT_INT8_WEIGHTS = PER_TENSOR, PER_CHANNEL
PEER_RUNTIMES = {"ort": (ORT_FP32, ORT_INT8), "openvino": (OV_FP32, OV_INT8)}
PEER_VARIANTS = tuple(variant for variants in PEER_RUNTIMES.values() for variant in variants)
PEER_CHOICES = ("ort", "openvino", "all", "none")
CALIBRATION_EXAMPLES = 300  # NNCF's default subset size


def peer_runtimes(peers: str) -> tuple[str, ...]:
    """The runtimes `--peers` names: `ort`, `openvino`, both (`all`) or none."""
    return tuple(PEER_RUNTIMES) if peers == "all" else () if peers == "none" else (peers,)


def check_peers_available(peers: str, device: torch.device) -> None:
    """Raise ValueError when the `--peers` rows cannot run here: a missing package (naming the extra to install),
    or a non-CPU benchmark device."""
    runtimes = peer_runtimes(peers)
    if runtimes and device.type != "cpu":
        raise ValueError(f"the peer rows ({peers}) run on CPU; with --device {device} pass --peers none")
    needs = {"ort": (("onnxruntime", "onnxscript"), "onnx"), "openvino": (("onnxscript", "openvino", "nncf"), "openvino")}
    for runtime in runtimes:
        modules, extra = needs[runtime]
        for module in modules:
            try:
                __import__(module)
            except ImportError as error:
                raise ValueError(
                    f"the {runtime} peer rows need the {extra} extra ({error}): pip install 'transformers_prune[{extra}]', "
                    "or pass --peers none"
                ) from error


class RuntimeModel:
    """A model exported to another runtime, called like a HF model: `model(**batch)` with torch tensors, outputs
    as attributes. `runner(**numpy arrays)` returns `{output name: array}`."""

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
def exported_models(model, tokenizer, max_length: int, threads: int | None, int8_weights: str, format: str = "onnx"):
    """`{"fp32": RuntimeModel, "int8": RuntimeModel}` of `model` exported as `transformers-prune export --format
    FORMAT --int8` does (`export_folder`; ONNX Runtime's int8 weights scaled `int8_weights`) into a temporary folder,
    removed on exit, and run by the export's runner: the padded graph of a dense model, the token-dropping graph of a
    token-pruning one."""
    from ..deploy.onnx_export import export_folder
    from ..deploy.runner import ExportedModel

    threads = threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix=f"bench-{format}-") as folder:
        export_dir = os.path.join(folder, "export")
        export_folder(model, tokenizer, export_dir, int8=True, max_length=max_length, int8_weights=int8_weights, format=format)
        yield {precision: RuntimeModel(ExportedModel(export_dir, precision, threads), model.config) for precision in ("fp32", "int8")}


class _OpenVinoRunner:
    """A compiled OpenVINO model as a runner: the inputs its graph declares, outputs by name."""

    def __init__(self, compiled):
        self.compiled = compiled
        # OpenVINO's default, which the peers keep: bf16 on CPUs with bf16 instructions, else f32.
        self.inference_precision = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.input_names = [port.get_any_name() for port in compiled.inputs]
        self.output_names = [port.get_any_name() for port in compiled.outputs]

    def __call__(self, **arrays) -> dict:
        results = self.compiled({name: arrays[name] for name in self.input_names})
        return {name: results[port] for name, port in zip(self.output_names, self.compiled.outputs)}


@contextlib.contextmanager
def openvino_models(model, tokenizer, max_length: int, threads: int | None, calibration: list[dict]):
    """`{"fp32": RuntimeModel, "int8": RuntimeModel}`: `model`'s ONNX graph (exported as for ONNX Runtime) read by
    OpenVINO, and the same quantized by NNCF (static int8, calibrated on `calibration`: one input per item, numpy
    arrays by input name), both compiled for the CPU with `threads` inference threads."""
    import nncf
    import openvino

    from ..deploy.onnx_export import export_folder

    if not calibration:
        raise ValueError("OpenVINO's int8 peer needs calibration inputs")
    core = openvino.Core()
    settings = {"INFERENCE_NUM_THREADS": threads or torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix="bench-openvino-") as folder:
        export_dir = os.path.join(folder, "export")
        export_folder(model, tokenizer, export_dir, int8=False, max_length=max_length)
        fp32 = core.read_model(os.path.join(export_dir, "model.onnx"))
        names = [port.get_any_name() for port in fp32.inputs]
        samples = nncf.Dataset([{name: sample[name] for name in names} for sample in calibration])
        int8 = nncf.quantize(fp32, samples, model_type=nncf.ModelType.TRANSFORMER, subset_size=len(calibration))
        yield {
            precision: RuntimeModel(_OpenVinoRunner(core.compile_model(graph, "CPU", settings)), model.config)
            for precision, graph in (("fp32", fp32), ("int8", int8))
        }


__all__ = [
    "CALIBRATION_EXAMPLES",
    "EXPORT_INT8_WEIGHTS",
    "ORT_FP32",
    "ORT_INT8",
    "EXPORT_SUFFIXES",
    "OV_FP32",
    "OV_INT8",
    "PEER_CHOICES",
    "PEER_INT8_WEIGHTS",
    "PEER_RUNTIMES",
    "PEER_VARIANTS",
    "RuntimeModel",
    "check_peers_available",
    "exported_models",
    "openvino_models",
    "peer_runtimes",
]
