#!/usr/bin/env bash
# The SST-2 accuracy-speed frontier of every token method and its baselines: MiniLM-L6, all 67,349 training
# sentences, stock Trainer runs (`transformers-prune finetune`), config edits between stages (`convert --set`) and
# each paper's values (each config's docstring says what a value means here).
#
# Usage: bash examples/frontier/run_sst2.sh [SHARED_DATA_DIR] [OUTPUT_DIR] [STEP ...]
# With no STEP every step runs in order; a step whose output exists is skipped. On this project's 2-core CPU one
# epoch of SST-2 takes 30-60 minutes per training run; the two lanes below can run side by side (one thread each).
# BUDGET=N (environment) is the short recipe the committed results used: every method stage after dense trains on
# the first N training sentences only, and Transkimmer and AdapLeR start from the fine-tuned dense model rather than
# the pre-trained one (their papers' start), so that each needs minutes, not hours. Their predictors start at "keep
# everything" and need more steps than the others: they run 3 epochs over the N sentences, Transkimmer with
# skim_coefficient 2 rather than the official 0.5 and AdapLeR at learning rate 1e-4 rather than 3e-5 (in one epoch
# of 8,000 sentences, at 0.5 Transkimmer kept 99.9% of the tokens in training, 87.73 on dev; at 2 it kept them all at
# inference, 88.07; AdapLeR at 3e-5 and at 1e-4 kept every token, 88.42 and 87.73).
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs/frontier/sst2}
shift $(( $# > 2 ? 2 : $# ))
MODEL=$(python -c "from transformers_prune.resources import default_model_dir; print(default_model_dir())")
TRAIN="$DATA/glue/sst2/train.csv"
DEV="$DATA/glue/sst2/dev.csv"
FILES=(--train-file "$TRAIN" --validation-file "$DEV" --max-length 64)
BUDGET=${BUDGET:-}
if [ -n "$BUDGET" ]; then
  METHOD_FILES=("${FILES[@]}" --max-train-samples "$BUDGET"); SALIENCY_ROWS=(--max-samples "$BUDGET")
  AUTOBERT_ROWS=$BUDGET; START="$OUT/dense"; SKIM=2; ADAPLER_LR=1e-4; PREDICTOR_EPOCHS=3
else
  METHOD_FILES=("${FILES[@]}"); SALIENCY_ROWS=(); AUTOBERT_ROWS=8000; START=$MODEL; SKIM=0.5; ADAPLER_LR=3e-5; PREDICTOR_EPOCHS=1
fi
done_already() { [ -e "$1" ] && echo "skip: $1 exists"; }

dense() {  # one epoch, batch 32, lr 5e-5: the reference every method is compared with (88.88 on dev at seed 42,
           # 88.99 / 89.22 / 88.99 at --seed 1 / 2 / 3, 88.88 at lr 1e-4; two epochs reached 88.42: the dev set's 872
           # sentences make 0.11 points each)
  done_already "$OUT/dense" || transformers-prune finetune "$MODEL" --output-dir "$OUT/dense" "${FILES[@]}" \
    --batch-size 32 --learning-rate 5e-5
}
transkimmer() {  # one stage from the pre-trained model, the official GLUE skim_coefficient 0.5, trained as dense
  done_already "$OUT/transkimmer" && return
  transformers-prune convert --to transkimmer-bert "$START" "$OUT/transkimmer-init" --set skim_coefficient=$SKIM --overwrite
  transformers-prune finetune "$OUT/transkimmer-init" --output-dir "$OUT/transkimmer" "${METHOD_FILES[@]}" \
    --batch-size 32 --learning-rate 5e-5 --epochs "$PREDICTOR_EPOCHS"
}
ltp() {  # from dense: soft stage (the README's lr 2e-5, batch 64, lambda 0.1, T 1e-3, final threshold 0.01), then
         # the hard stage with the learned thresholds fixed (lr 1e-5, batch 64; the README runs 5 epochs, here 1)
  if ! done_already "$OUT/ltp-soft"; then
    transformers-prune convert --to ltp "$OUT/dense" "$OUT/ltp-soft-init" --overwrite --set masking_mode=soft \
      --set final_token_threshold=0.01 --set lambda_threshold=0.1 --set temperature=0.001
    transformers-prune finetune "$OUT/ltp-soft-init" --output-dir "$OUT/ltp-soft" "${METHOD_FILES[@]}" --batch-size 64 --learning-rate 2e-5
  fi
  done_already "$OUT/ltp" && return
  transformers-prune convert --to ltp "$OUT/ltp-soft" "$OUT/ltp-hard-init" --set masking_mode=hard --overwrite
  transformers-prune finetune "$OUT/ltp-hard-init" --output-dir "$OUT/ltp" "${METHOD_FILES[@]}" --batch-size 64 --learning-rate 1e-5
}
adapler() {  # saliency targets from dense, then AdapLeR from the pre-trained model as the official run.sh
             # (gamma 0.005, phi 0.0005, lr 3e-5; the original trains 5 epochs, here 1, 3 with BUDGET)
  done_already "$OUT/train_saliency.jsonl" || transformers-prune saliency "$OUT/dense" --data-file "$TRAIN" \
    --max-length 64 "${SALIENCY_ROWS[@]}" --output-file "$OUT/train_saliency.jsonl"
  done_already "$OUT/adapler" && return
  transformers-prune convert --to adapler-bert "$START" "$OUT/adapler-init" --set gamma=0.005 --set phi=0.0005 --overwrite
  transformers-prune finetune "$OUT/adapler-init" --output-dir "$OUT/adapler" --train-file "$OUT/train_saliency.jsonl" \
    --validation-file "$DEV" --max-length 64 --batch-size 32 --learning-rate "$ADAPLER_LR" --epochs "$PREDICTOR_EPOCHS"
}
autobert() {  # from dense: imitation scores and teacher logits, policy-only RL (BERT frozen, 8 rollouts, imitation
              # for the first half of the steps, the official alpha 1), then joint training distilled from the
              # teacher at the official lr 3e-5; 8,000 sentences each (the official recipe trains 3 epochs of
              # everything). The policy stage runs at lr 3e-3, not the official 3e-5: in our 250 steps (3 epochs of
              # all of SST-2 are ~6,300) a policy trained at 3e-5 kept its probabilities bunched at 0.5 (keep_threshold
              # 0.3 kept 100% of the tokens, 0.7 only the 20% floor), and on IMDB so did one at 3e-4 (run_imdb.sh)
  done_already "$OUT/train_autobert.jsonl" || transformers-prune autobert-targets "$OUT/dense" --data-file "$TRAIN" \
    --max-length 64 --max-samples "$AUTOBERT_ROWS" --output-file "$OUT/train_autobert.jsonl"
  if ! done_already "$OUT/autobert-rl"; then
    transformers-prune convert --to autobert "$OUT/dense" "$OUT/autobert-rl-init" --overwrite --set training_stage=train_rl \
      --set alpha=1 --set guide_rate=0.5 --set rl_num_samples=8
    transformers-prune finetune "$OUT/autobert-rl-init" --output-dir "$OUT/autobert-rl" --train-file "$OUT/train_autobert.jsonl" \
      --validation-file "$DEV" --max-length 64 --batch-size 32 --learning-rate 3e-3
  fi
  done_already "$OUT/autobert" && return
  transformers-prune convert --to autobert "$OUT/autobert-rl" "$OUT/autobert-both-init" --overwrite \
    --set training_stage=train_both --set train_teacher=true
  transformers-prune finetune "$OUT/autobert-both-init" --output-dir "$OUT/autobert" --train-file "$OUT/train_autobert.jsonl" \
    --validation-file "$DEV" --max-length 64 --batch-size 32 --learning-rate 3e-5
}
bench() {  # every model against the dense baselines and the peers, each method at several operating points
  bash "$(dirname "$0")/bench.sh" sst2 "$DATA" "$OUT"
}

for step in "${@:-dense transkimmer ltp adapler autobert bench}"; do
  for one in $step; do "$one"; done
done
