"""Deployment: ONNX export with real token dropping, ONNX Runtime int8, the torch-free runner, torch int8."""
