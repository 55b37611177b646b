"""Run a model exported by `transformers-prune export` without torch: numpy, tokenizers, and the export's runtime,
ONNX Runtime (`--format onnx`) or OpenVINO (`--format openvino`).

This file is copied into every export folder and imports nothing else (no torch, no transformers), so the
folder runs anywhere `pip install onnxruntime tokenizers numpy` (or `openvino` instead of `onnxruntime`) works:

    from runner import ExportedModel

    model = ExportedModel("exported")                         # precision="int8" for the int8 graph
    model.predict(["a gripping, funny film", "dull"])         # classifiers: one label per text
    outputs = model(**model.tokenize(["a gripping film"]))    # any head: {"logits": array [1, 2], ...}

    python runner.py exported "a gripping, funny film" "dull"

Inputs are `[batch, seq_len]` integer arrays, right-padded (BERT's layout); anything else raises ValueError
naming the problem. Two graph kinds exist (`export_config.json`, key "graph"):

- "padded": a dense model (BERT, compressed-bert) over the whole padded batch, any batch size;
- "single_example": a token-pruning model whose graph drops tokens (data-dependent shapes), one example per
  call. A batch is run one example at a time (each with its own padding, which the graph removes), and the
  outputs are stacked: the same result as the torch model's packed engine on the whole batch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

CONFIG_FILE = "export_config.json"
TOKENIZER_FILE = "tokenizer.json"
EXPORT_CONFIG_KEYS = ("files", "outputs", "head", "max_length", "graph", "vocab_size")
PADDED, SINGLE_EXAMPLE = "padded", "single_example"


class _OnnxRuntimeGraph:
    """An `.onnx` graph in an ONNX Runtime session."""

    def __init__(self, path: str, threads: int | None, providers: list[str] | None):
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise ValueError(f"{path} runs with ONNX Runtime ({error}): pip install onnxruntime") from None
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=providers or ["CPUExecutionProvider"])

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(output_names, feeds)


class _OpenVinoGraph:
    """An OpenVINO IR graph (`.xml` beside its `.bin`) compiled for the CPU, computing in fp32: OpenVINO's default on
    CPUs with bf16 instructions is bf16, which moves logits by about 1e-2 and can flip a token decision near its
    threshold; the export's check and its users get the graph the torch model was checked against."""

    def __init__(self, path: str, threads: int | None, providers: list[str] | None):
        if providers:
            raise ValueError(f"providers name ONNX Runtime execution providers; {path} is an OpenVINO graph")
        try:
            import openvino
        except ImportError as error:
            raise ValueError(f"{path} runs with OpenVINO ({error}): pip install openvino") from None
        settings = {"INFERENCE_PRECISION_HINT": "f32", **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
        self.compiled = openvino.Core().compile_model(path, "CPU", settings)

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self.compiled(feeds)
        return [results[self.compiled.output(name)] for name in output_names]


GRAPH_LOADERS = {".onnx": _OnnxRuntimeGraph, ".xml": _OpenVinoGraph}


class ExportedModel:
    """An exported folder's graph on the CPU (ONNX Runtime for `.onnx`, OpenVINO for `.xml`), with its tokenizer
    and input checks.

    Args:
        folder: what `transformers-prune export` wrote (`export_config.json`, the graph files, `tokenizer.json`).
        precision: "fp32" or "int8" (written by `export --int8`); `export_config.json`'s "files" names each graph.
        threads: the runtime's inference threads (default: its own choice, one per physical core).
        providers: ONNX Runtime execution providers (default: CPU); not for OpenVINO exports.
    """

    def __init__(self, folder: str, precision: str = "fp32", threads: int | None = None, providers: list[str] | None = None):
        config_path = os.path.join(folder, CONFIG_FILE)
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"{folder} is not an export folder: it has no {CONFIG_FILE}")
        with open(config_path, encoding="utf-8") as f:
            try:
                self.config = json.load(f)
            except json.JSONDecodeError as error:
                raise ValueError(f"{config_path} is not JSON ({error})") from None
        missing = [key for key in EXPORT_CONFIG_KEYS if not isinstance(self.config, dict) or key not in self.config]
        if missing:
            raise ValueError(f"{config_path} lacks {', '.join(missing)}: it was not written by `transformers-prune export`")
        files = self.config["files"]
        if precision not in files:
            raise ValueError(f"{folder} has no {precision!r} graph; it has {sorted(files)} (export with --int8 for int8)")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        graph = os.path.join(folder, files[precision])
        if not os.path.isfile(graph):
            raise FileNotFoundError(f"{graph} is missing: copy the whole export folder")
        loader = GRAPH_LOADERS.get(os.path.splitext(graph)[1])
        if loader is None:
            raise ValueError(f"{graph}: a graph is an .onnx file (ONNX Runtime) or an .xml file (OpenVINO)")
        try:
            self.session = loader(graph, threads, providers)
        except ValueError:
            raise
        except Exception as error:  # the runtimes' own classes (InvalidProtobuf, Fail, RuntimeError): one message instead
            raise ValueError(f"{graph} is not a loadable graph (truncated or damaged?): {' '.join(str(error).split())[:300]}") from None
        self.folder = folder
        self.output_names = list(self.config["outputs"])
        self._tokenizer = None

    @property
    def max_length(self) -> int:
        return self.config["max_length"]

    # ------------------------------------------------------------------------------------------------- text

    @property
    def tokenizer(self):
        """The export's `tokenizers.Tokenizer` (pads to the longest text of a batch); loaded on first use."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            path = os.path.join(self.folder, TOKENIZER_FILE)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} is missing: copy the whole export folder")
            try:
                self._tokenizer = Tokenizer.from_file(path)
            except Exception as error:  # the tokenizers library raises its own plain Exception
                raise ValueError(f"{path} is not a tokenizers file ({' '.join(str(error).split())[:300]})") from None
            self._tokenizer.no_truncation()
        return self._tokenizer

    def tokenize(self, texts: list[str], text_pairs: list[str] | None = None, truncation: bool = True) -> dict[str, np.ndarray]:
        """`{"input_ids", "attention_mask", "token_type_ids"}` int64 `[batch, longest]` for `texts` (and the second
        segments `text_pairs`, e.g. SQuAD contexts). Texts longer than `max_length` tokens are cut to it with
        `truncation=True` (the second segment first, as HF's "longest_first"), refused otherwise."""
        if isinstance(texts, str):
            raise ValueError("texts must be a list of strings, got one string; wrap it in a list")
        if len(texts) == 0:
            raise ValueError("texts is empty: pass at least one text")
        blank = next((i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()), None)
        if blank is not None:
            raise ValueError(f"text {blank} is {texts[blank]!r}: every text needs at least one word")
        if text_pairs is not None and len(text_pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(text_pairs)} text_pairs")
        tokenizer = self.tokenizer
        if truncation:
            tokenizer.enable_truncation(self.max_length)
        try:
            batch = list(zip(texts, text_pairs)) if text_pairs is not None else list(texts)
            encodings = tokenizer.encode_batch(batch)
        finally:
            tokenizer.no_truncation()
        too_long = [(i, sum(e.attention_mask)) for i, e in enumerate(encodings) if sum(e.attention_mask) > self.max_length]
        if too_long:
            index, length = too_long[0]
            raise ValueError(
                f"text {index} has {length} tokens, more than the model's {self.max_length}; "
                "pass truncation=True or shorten it"
            )
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }

    def predict(self, texts: list[str], text_pairs: list[str] | None = None) -> list[str]:
        """The predicted label of each text (sequence classifiers only), by `id2label`."""
        if self.config["head"] != "sequence-classification":
            raise ValueError(f"predict needs a sequence classifier; this export's head is {self.config['head']!r}: call the model on tokenize(...)")
        logits = self(**self.tokenize(texts, text_pairs))["logits"]
        id2label = self.config["id2label"]
        return [id2label[str(index)] for index in logits.argmax(axis=-1).tolist()]

    # ----------------------------------------------------------------------------------------------- arrays

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None) -> dict[str, np.ndarray]:
        """Run the graph on `[batch, seq_len]` arrays (missing mask: all ones; missing token types: all zeros).

        Returns `{output name: array}` with the batch first, e.g. "logits" `[batch, num_labels]`, or
        "start_logits"/"end_logits" `[batch, seq_len]`; token-pruning graphs add "tokens_per_layer"
        `[batch, num_layers]` (real tokens entering each layer).
        """
        feeds = self.checked_inputs(input_ids, attention_mask, token_type_ids)
        if self.config["graph"] == PADDED:
            return dict(zip(self.output_names, self.session.run(self.output_names, feeds)))
        per_example = [
            self.session.run(self.output_names, {name: array[row : row + 1] for name, array in feeds.items()})
            for row in range(feeds["input_ids"].shape[0])
        ]
        return {name: np.concatenate([outputs[i] for outputs in per_example]) for i, name in enumerate(self.output_names)}

    def checked_inputs(self, input_ids, attention_mask=None, token_type_ids=None) -> dict[str, np.ndarray]:
        """The graph's int64 inputs, after checking shapes, dtypes and values; ValueError naming any problem."""
        input_ids = _integer_array("input_ids", input_ids)
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be 2-D [batch, seq_len], got shape {input_ids.shape}")
        batch_size, seq_len = input_ids.shape
        if batch_size == 0 or seq_len == 0:
            raise ValueError(f"the input is empty: input_ids has shape {input_ids.shape}")
        if seq_len > self.max_length:
            raise ValueError(
                f"the input has {seq_len} positions, more than the model's {self.max_length}; truncate it "
                "(tokenize(..., truncation=True))"
            )
        attention_mask = np.ones_like(input_ids) if attention_mask is None else _integer_array("attention_mask", attention_mask)
        token_type_ids = np.zeros_like(input_ids) if token_type_ids is None else _integer_array("token_type_ids", token_type_ids)
        for name, array in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if array.shape != input_ids.shape:
                raise ValueError(f"{name} has shape {array.shape}, input_ids {input_ids.shape}: they must match")
        _check_range("input_ids", input_ids, self.config["vocab_size"])
        _check_range("token_type_ids", token_type_ids, self.config["type_vocab_size"])
        _check_attention_mask(attention_mask)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


def _integer_array(name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integers (token ids / 0-1 flags), got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


def _check_range(name: str, array: np.ndarray, size: int) -> None:
    bad = (array < 0) | (array >= size)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}[{row}, {column}] = {array[row, column]} is outside the model's range 0..{size - 1}")


def _check_attention_mask(mask: np.ndarray) -> None:
    if ((mask != 0) & (mask != 1)).any():
        raise ValueError(f"attention_mask must hold 0 and 1 only, got values {sorted(np.unique(mask).tolist())[:5]}")
    empty = np.flatnonzero(mask.sum(axis=1) == 0).tolist()
    if empty:
        raise ValueError(f"examples {empty} are all padding (attention_mask all zeros); each needs a [CLS] token")
    # Right padding: once a row's mask is 0 it stays 0 (a 1 after a 0 is a hole or left padding).
    not_right_padded = np.flatnonzero((np.diff(mask, axis=1) > 0).any(axis=1)).tolist()
    if not_right_padded:
        raise ValueError(
            f"examples {not_right_padded} are not right-padded (a 1 follows a 0 in attention_mask); BERT inputs keep "
            "their tokens first and padding last"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Classify texts with a model exported by `transformers-prune export`.")
    parser.add_argument("folder", help="the export folder")
    parser.add_argument("texts", nargs="+", help="texts to classify")
    parser.add_argument("--int8", action="store_true", help="run the int8 graph (written by export --int8)")
    parser.add_argument("--threads", type=int, help="the runtime's inference threads")
    args = parser.parse_args(argv)
    try:
        model = ExportedModel(args.folder, "int8" if args.int8 else "fp32", args.threads)
        labels = model.predict(args.texts)
    except (ValueError, OSError) as error:
        print(f"runner: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    for text, label in zip(args.texts, labels):
        print(f"{label}\t{text}")


if __name__ == "__main__":
    main()
