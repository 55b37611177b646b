#!/usr/bin/env bash
# The stock-script recipes of docs/stock_scripts.md on SST-2 with the small budget (the first 256 training
# sentences, batch 8, 3 epochs per stage), through glue_calls.py (run_glue.py's calls, offline). About 25 minutes
# on this project's 2-core CPU. Usage: bash examples/stock_scripts/run_sst2.sh [DATA_DIR] [OUT]
set -euo pipefail
DATA=${1:-../shared/data}/glue/sst2
OUT=${2:-runs/stock-sst2}
HERE=$(dirname "$0")
MODEL=$(python -c "from transformers_prune.resources import default_model_dir; print(default_model_dir())")
glue() { python "$HERE/glue_calls.py" "$1" "$2" --train-file "$DATA/train.csv" --validation-file "$DATA/dev.csv" \
  --max-train-samples 256 --epochs 3 --learning-rate "$3"; }

glue "$MODEL" "$OUT/dense" 2e-4                               # BERT: 76.26 on dev
transformers-prune convert --to ltp "$OUT/dense" "$OUT/ltp-soft-init" --set masking_mode=soft \
  --set final_token_threshold=0.005 --overwrite
glue "$OUT/ltp-soft-init" "$OUT/ltp-soft" 2e-5
transformers-prune convert --to ltp "$OUT/ltp-soft" "$OUT/ltp-hard-init" --set masking_mode=hard --overwrite
glue "$OUT/ltp-hard-init" "$OUT/ltp" 1e-5                     # 75.00, 79.9% kept
transformers-prune convert --to autobert "$OUT/dense" "$OUT/autobert-rl-init" --set guide_rate=0 --overwrite
glue "$OUT/autobert-rl-init" "$OUT/autobert-rl" 3e-3           # 75.11, 50.4% kept
transformers-prune convert --to autobert "$OUT/autobert-rl" "$OUT/autobert-both-init" --set training_stage=train_both --overwrite
glue "$OUT/autobert-both-init" "$OUT/autobert" 2e-5            # 74.54, 48.7% kept
transformers-prune compress "$OUT/dense" "$OUT/compressed-init" --method svd --targets key output --ratio 3 --overwrite
glue "$OUT/compressed-init" "$OUT/compressed" 2e-5             # 76.49
for type in transkimmer-bert adapler-bert; do
  transformers-prune convert --to "$type" "$MODEL" "$OUT/$type-init" --overwrite
  glue "$OUT/$type-init" "$OUT/$type" 2e-4                     # 75.92 / 74.66, every token kept
done
