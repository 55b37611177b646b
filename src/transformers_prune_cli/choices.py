"""The library's values that `--help` shows (option choices and defaults), written out here because importing any
part of `transformers_prune` registers its model types, which loads torch and transformers: seconds of CPU before
argparse could print. `tests/test_commands_reliability.py` checks each against the library's own value."""

MODEL_TYPES = ("transkimmer-bert", "ltp", "adapler-bert", "autobert", "ltp-roberta")  # conversion.CONVERTIBLE_TYPES
TASKS = ("sst2", "imdb", "squad")  # benchmark.data.TASKS
PEERS = ("ort", "openvino", "all", "none")  # benchmark.peers.PEER_CHOICES
DTYPES = ("float32", "float16", "bfloat16")  # benchmark.runner.DTYPES
EXPORT_HEADS = ("sequence-classification", "question-answering", "token-classification", "encoder")  # deploy.checkpoint_loading.HEADS
INT8_WEIGHTS = ("per-channel", "per-tensor")  # deploy.INT8_WEIGHTS
EXPORT_FORMATS = ("onnx", "openvino")  # deploy.onnx_export.FORMATS

# compression: its methods, targets, autoencoder options and the defaults of FitSettings and the Fisher/held-out sample
COMPRESSION_METHODS = ("svd", "fwsvd", "pruning", "ae", "kronecker", "tucker")
COMPRESSION_TARGETS = ("query", "key", "value", "attention_output", "intermediate", "output", "word_embeddings")
AE_GROUPINGS = ("concatenated", "separated")
AE_RECIPES = ("autodecoder", "paper")
ROW_SCALES = ("fitted", "norm")
FISHER_SAMPLES = 2048
FISHER_FLOOR = 0.1
HELDOUT_SAMPLES = 64
