#!/usr/bin/env bash
# AdapLeR on SST-2 with MiniLM-L6: fine-tune BERT, compute saliency targets, train adapler-bert, benchmark.
# Every training run is the stock Trainer (`transformers-prune finetune`).
# Usage: bash examples/adapler/run_sst2.sh [SHARED_DATA_DIR] [OUTPUT_DIR] [ADAPLER_TRAIN_SAMPLES]
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs/adapler-sst2}
SAMPLES=${3:-16000}
MODEL=$(python -c "from transformers_prune.resources import default_model_dir; print(default_model_dir())")

# 1. Fine-tune the plain BERT (the same run as the dense model of examples/transkimmer).
transformers-prune finetune "$MODEL" --output-dir "$OUT/bert" --train-file "$DATA/glue/sst2/train.csv" \
  --validation-file "$DATA/glue/sst2/dev.csv" --max-train-samples 32000 --learning-rate 1e-4

# 2. Saliency targets: gradient x input at the embeddings for the gold logit, on the rows AdapLeR trains on.
#    Several fine-tuned checkpoints may be listed; their saliencies are averaged (the original uses 3 epochs).
transformers-prune saliency "$OUT/bert" --data-file "$DATA/glue/sst2/train.csv" --max-samples "$SAMPLES" \
  --max-length 128 --output-file "$OUT/train_saliency.jsonl"

# 3. AdapLeR from the fine-tuned BERT with gamma and phi of the original's SST-2 command; 3 epochs at lr 1e-4 (the
#    original runs 5 epochs of all 67k sentences at 3e-5; after 1 epoch here the fresh predictors still kept
#    98.8% of the tokens). The soft mask's sharpness is annealed from 10 to 1e5 over the run.
transformers-prune convert --to adapler-bert "$OUT/bert" "$OUT/init" --set gamma=0.005 --set phi=0.0005
transformers-prune finetune "$OUT/init" --output-dir "$OUT/adapler" --train-file "$OUT/train_saliency.jsonl" \
  --validation-file "$DATA/glue/sst2/dev.csv" --learning-rate 1e-4 --epochs 3

# 4. Benchmark against the dense baselines, with an inference-time sweep of eta's scale.
transformers-prune bench "$OUT/bert" "$OUT/adapler" --task sst2 --data-dir "$DATA" --batch-sizes 1 8 32 \
  --threads 2 --baselines first --sweep eta_scale=0.5,1.0,2.0 --output-dir "$OUT/bench"
