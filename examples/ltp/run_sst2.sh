#!/usr/bin/env bash
# LTP's recipe on SST-2 with MiniLM-L6 (the seed README's stages 0, 1, 2), plus its top-k baseline.
# Every training run is the stock Trainer (`transformers-prune finetune`); every switch between stages is a
# config edit (`transformers-prune convert --set`), as the original README edits config.json.
# Usage: bash examples/ltp/run_sst2.sh [SHARED_DATA_DIR] [OUTPUT_DIR] [STAGE_1_2_TRAIN_SAMPLES]
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs/ltp-sst2}
SAMPLES=${3:-16000}
MODEL=$(python -c "from transformers_prune.resources import default_model_dir; print(default_model_dir())")
FILES=(--train-file "$DATA/glue/sst2/train.csv" --validation-file "$DATA/glue/sst2/dev.csv")

# Stage 0: fine-tune the plain BERT (the same run as the dense model of examples/transkimmer).
transformers-prune finetune "$MODEL" --output-dir "$OUT/stage0" "${FILES[@]}" --max-train-samples 32000 --learning-rate 1e-4

# Stage 1, soft: thresholds and weights learn together (lr 2e-5 as in the LTP README; thresholds move
# threshold_lr_scale = 10 times faster). MiniLM's scores are larger than RoBERTa's: final_token_threshold 0.04.
transformers-prune convert --to ltp "$OUT/stage0" "$OUT/stage1-init" \
  --set masking_mode=soft --set final_token_threshold=0.04 --set lambda_threshold=0.1 --set temperature=0.001
transformers-prune finetune "$OUT/stage1-init" --output-dir "$OUT/stage1-soft" "${FILES[@]}" \
  --max-train-samples "$SAMPLES" --learning-rate 2e-5

# Stage 2, hard: the learned thresholds stay fixed, tokens are dropped in training as at inference.
transformers-prune convert --to ltp "$OUT/stage1-soft" "$OUT/stage2-init" --set masking_mode=hard
transformers-prune finetune "$OUT/stage2-init" --output-dir "$OUT/stage2-hard" "${FILES[@]}" \
  --max-train-samples "$SAMPLES" --learning-rate 1e-5

# Top-k baseline: the same stage 0, keep rate falling to token_keep_rate at the last layer, hard training.
transformers-prune convert --to ltp "$OUT/stage0" "$OUT/topk-init" --set prune_mode=topk --set token_keep_rate=0.1
transformers-prune finetune "$OUT/topk-init" --output-dir "$OUT/topk" "${FILES[@]}" \
  --max-train-samples "$SAMPLES" --learning-rate 1e-5

transformers-prune bench "$OUT/stage0" "$OUT/stage2-hard" "$OUT/topk" --task sst2 --data-dir "$DATA" \
  --batch-sizes 1 8 32 --threads 2 --output-dir "$OUT/bench"
