#!/usr/bin/env bash
# Run here, before `utils/gpu_check.sh` goes to the device machine: writes the git-ignored `.gpu/` that the run
# carries along (`carry: [".gpu"]`, 64 MiB at most), since that machine has neither the MiniLM package nor network:
#   .gpu/minilm/                  MiniLM-L6-H384 (config and tokenizer files as they are, weights re-saved in fp16:
#                                 about 45 MB instead of 90; gpu_check.py loads them into fp32/bf16 models)
#   .gpu/data/imdb/test.jsonl.gz  a seeded random 1,024 of the IMDB test reviews (the bench's `--task imdb` layout)
#
#     bash utils/prepare_gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
IMDB="${IMDB:-/work/shared/data/imdb/test.jsonl.gz}"
rm -rf .gpu
mkdir -p .gpu/minilm .gpu/data/imdb

python - "$IMDB" <<'EOF'
import gzip
import os
import random
import shutil
import sys

from safetensors.torch import load_file, save_file

from transformers_prune.resources import default_model_dir

source = default_model_dir()
for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    shutil.copy(os.path.join(source, name), os.path.join(".gpu/minilm", name))
weights = load_file(os.path.join(source, "model.safetensors"))
save_file({name: tensor.half() for name, tensor in weights.items()}, ".gpu/minilm/model.safetensors", metadata={"format": "pt"})

with gzip.open(sys.argv[1], "rt", encoding="utf-8") as f:
    lines = [line for line in f if line.strip()]
# Seeded, so that every prepared copy holds the same reviews; 1,024 leave the bench's own shuffle 512 to pick.
sample = random.Random(0).sample(lines, 1024)
with gzip.open(".gpu/data/imdb/test.jsonl.gz", "wt", encoding="utf-8") as f:
    f.writelines(sample)
EOF

du -sh .gpu/minilm .gpu/data/imdb/test.jsonl.gz
du -sh .gpu
