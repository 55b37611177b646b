#!/usr/bin/env bash
# The SST-2 accuracy-speed frontier of every token method and its baselines, MiniLM-L6, all 67,349 training
# sentences, stock Trainer runs (`transformers-prune finetune`), config edits between stages (`convert --set`),
# each method's paper values (see their configs' docstrings for what each value means here).
# Usage: bash examples/frontier/run_sst2.sh [SHARED_DATA_DIR] [OUTPUT_DIR]
# Every step is one command; on this project's 2-core CPU an epoch of SST-2 takes 30-60 minutes per run.
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs/frontier/sst2}
MODEL=$(python -c "from transformers_prune.resources import default_model_dir; print(default_model_dir())")
FILES=(--train-file "$DATA/glue/sst2/train.csv" --validation-file "$DATA/glue/sst2/dev.csv" --max-length 64)

# Dense: one epoch, batch 32, lr 5e-5 (the reference every method is compared with).
transformers-prune finetune "$MODEL" --output-dir "$OUT/dense" "${FILES[@]}" --batch-size 32 --learning-rate 5e-5

# Transkimmer: one stage from the pre-trained model, the official GLUE skim_coefficient 0.5, trained as dense.
transformers-prune convert --to transkimmer-bert "$MODEL" "$OUT/transkimmer-init" --set skim_coefficient=0.5
transformers-prune finetune "$OUT/transkimmer-init" --output-dir "$OUT/transkimmer" "${FILES[@]}" --batch-size 32 --learning-rate 5e-5

# LTP from the dense model: soft stage (lr 2e-5, batch 64, lambda 0.1, T 1e-3, final threshold 0.01: the README's),
# then the hard stage with the learned thresholds fixed (lr 1e-5, batch 64; the README runs 5 epochs, here 1).
transformers-prune convert --to ltp "$OUT/dense" "$OUT/ltp-soft-init" --set masking_mode=soft \
  --set final_token_threshold=0.01 --set lambda_threshold=0.1 --set temperature=0.001
transformers-prune finetune "$OUT/ltp-soft-init" --output-dir "$OUT/ltp-soft" "${FILES[@]}" --batch-size 64 --learning-rate 2e-5
transformers-prune convert --to ltp "$OUT/ltp-soft" "$OUT/ltp-hard-init" --set masking_mode=hard
transformers-prune finetune "$OUT/ltp-hard-init" --output-dir "$OUT/ltp" "${FILES[@]}" --batch-size 64 --learning-rate 1e-5

# AdapLeR: saliency targets from the dense model, then AdapLeR from the pre-trained model as the official run.sh
# (gamma 0.005, phi 0.0005, lr 3e-5; the original trains 5 epochs, here 1).
transformers-prune saliency "$OUT/dense" --data-file "$DATA/glue/sst2/train.csv" --max-length 64 \
  --output-file "$OUT/train_saliency.jsonl"
transformers-prune convert --to adapler-bert "$MODEL" "$OUT/adapler-init" --set gamma=0.005 --set phi=0.0005
transformers-prune finetune "$OUT/adapler-init" --output-dir "$OUT/adapler" --train-file "$OUT/train_saliency.jsonl" \
  --validation-file "$DATA/glue/sst2/dev.csv" --max-length 64 --batch-size 32 --learning-rate 3e-5

# TR-BERT from the dense model: imitation scores and teacher logits, policy-only RL (BERT frozen, 8 rollouts,
# imitation for the first half), then joint training distilled from the teacher, each on 8,000 sentences.
transformers-prune autobert-targets "$OUT/dense" --data-file "$DATA/glue/sst2/train.csv" --max-length 64 \
  --max-samples 8000 --output-file "$OUT/train_autobert.jsonl"
transformers-prune convert --to autobert "$OUT/dense" "$OUT/autobert-rl-init" --set training_stage=train_rl \
  --set alpha=1 --set guide_rate=0.5 --set rl_num_samples=8
transformers-prune finetune "$OUT/autobert-rl-init" --output-dir "$OUT/autobert-rl" --train-file "$OUT/train_autobert.jsonl" \
  --validation-file "$DATA/glue/sst2/dev.csv" --max-length 64 --batch-size 32 --learning-rate 3e-5
transformers-prune convert --to autobert "$OUT/autobert-rl" "$OUT/autobert-both-init" --set training_stage=train_both \
  --set train_teacher=true --set rl_num_samples=8
transformers-prune finetune "$OUT/autobert-both-init" --output-dir "$OUT/autobert" --train-file "$OUT/train_autobert.jsonl" \
  --validation-file "$DATA/glue/sst2/dev.csv" --max-length 64 --batch-size 32 --learning-rate 3e-5

# The frontier: every model against the dense baselines and the peers, each method at several inference-time
# operating points (one bench run per sweep key; the dense rows are measured once).
bash "$(dirname "$0")/bench.sh" sst2 "$DATA" "$OUT"
