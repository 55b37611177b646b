"""Deployment: ONNX export with real token dropping, ONNX Runtime int8, the torch-free runner, torch int8."""

# How an ONNX int8 graph's weights are scaled: one scale per output channel (the export's default) or one per matrix
# (ONNX Runtime `quantize_dynamic`'s own default, the benchmark's dense peer). Here, not in `onnx_export`, so that
# the export command's parser needs no optional package. See `onnx_export.quantize_onnx_int8`.
PER_CHANNEL, PER_TENSOR = "per-channel", "per-tensor"
INT8_WEIGHTS = (PER_CHANNEL, PER_TENSOR)
