#!/usr/bin/env bash
# Fine-tune MiniLM-L6 on SST-2 (dense and transkimmer-bert, same recipe), then report SST-2 dev accuracy,
# Transkimmer's kept fraction and inference latency at batch 1, 8, 32 (HF dense, dense-packed, Transkimmer).
# Usage: bash examples/transkimmer/run_sst2.sh [SHARED_DATA_DIR] [OUTPUT_DIR] [TRAIN_SAMPLES]
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs/transkimmer-sst2}
SAMPLES=${3:-32000}
transformers-prune demo \
  --train-file "$DATA/glue/sst2/train.csv" \
  --validation-file "$DATA/glue/sst2/dev.csv" \
  --max-train-samples "$SAMPLES" \
  --learning-rate 1e-4 \
  --skim-coefficient 1.0 \
  --output-dir "$OUT"
