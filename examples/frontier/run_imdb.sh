#!/usr/bin/env bash
# The IMDB accuracy-speed frontier of every token method and its baselines: MiniLM-L6 trained on 4,000 IMDB
# training reviews (random.Random(42).shuffle of the 25,000, the first 4,000), 512 tokens, stock Trainer runs,
# each paper's values; evaluated by the benchmark on 2,000 test reviews (the same seeded shuffle).
#
# Usage: bash examples/frontier/run_imdb.sh [SHARED_DATA_DIR] [OUTPUT_DIR] [STEP ...]
# With no STEP every step runs in order; a step whose output exists is skipped. On this project's 2-core CPU one
# epoch of the 4,000 reviews takes about an hour per training run (one thread).
# BUDGET=N (environment) is the short recipe of the committed results: every method stage after dense trains on the
# first N of the 4,000 reviews (TR-BERT's policy-only stage, whose steps are cheap, on all 4,000), Transkimmer from
# the fine-tuned dense model with skim_coefficient 2 for 3 epochs (as run_sst2.sh). With N=1000 and one epoch (63
# steps) Transkimmer kept every token at every keep_threshold from 0.5 to 0.97 (96 held-out test reviews), so it was
# left out of the committed bench; the 3 epochs are not measured yet.
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs/frontier/imdb}
shift $(( $# > 2 ? 2 : $# ))
MODEL=$(python -c "from transformers_prune.resources import default_model_dir; print(default_model_dir())")
TRAIN="$OUT/train4k.jsonl"
COMMON=(--text-column text --max-length 512 --validation-file "" --batch-size 16)
BUDGET=${BUDGET:-}
if [ -n "$BUDGET" ]; then
  METHOD=("${COMMON[@]}" --max-train-samples "$BUDGET"); SALIENCY_ROWS=(--max-samples "$BUDGET")
  START="$OUT/dense"; SKIM=2; PREDICTOR_EPOCHS=3
else
  METHOD=("${COMMON[@]}"); SALIENCY_ROWS=(); START=$MODEL; SKIM=0.5; PREDICTOR_EPOCHS=1
fi
done_already() { [ -e "$1" ] && echo "skip: $1 exists"; }

data() {  # IMDB's files are sorted by label: the seeded shuffle (= finetune --shuffle-seed 42 --max-train-samples 4000)
  done_already "$TRAIN" && return
  mkdir -p "$OUT"
  python - "$DATA/imdb/train.jsonl.gz" "$TRAIN" <<'PY'
import gzip, json, random, sys
rows = [json.loads(line) for line in gzip.open(sys.argv[1], "rt", encoding="utf-8")]
random.Random(42).shuffle(rows)
with open(sys.argv[2], "w", encoding="utf-8") as f:
    f.writelines(json.dumps(row) + "\n" for row in rows[:4000])
PY
}
dense() {
  done_already "$OUT/dense" || transformers-prune finetune "$MODEL" --output-dir "$OUT/dense" --train-file "$TRAIN" \
    "${COMMON[@]}" --learning-rate 5e-5
}
transkimmer() {  # from the pre-trained model, the official IMDB skim_coefficient 0.5
  done_already "$OUT/transkimmer" && return
  transformers-prune convert --to transkimmer-bert "$START" "$OUT/transkimmer-init" --set skim_coefficient=$SKIM --overwrite
  transformers-prune finetune "$OUT/transkimmer-init" --output-dir "$OUT/transkimmer" --train-file "$TRAIN" \
    "${METHOD[@]}" --learning-rate 5e-5 --epochs "$PREDICTOR_EPOCHS"
}
ltp() {  # from dense: soft stage then hard stage, the README's values, one epoch each
  if ! done_already "$OUT/ltp-soft"; then
    transformers-prune convert --to ltp "$OUT/dense" "$OUT/ltp-soft-init" --overwrite --set masking_mode=soft \
      --set final_token_threshold=0.01 --set lambda_threshold=0.1 --set temperature=0.001
    transformers-prune finetune "$OUT/ltp-soft-init" --output-dir "$OUT/ltp-soft" --train-file "$TRAIN" "${METHOD[@]}" --learning-rate 2e-5
  fi
  done_already "$OUT/ltp" && return
  transformers-prune convert --to ltp "$OUT/ltp-soft" "$OUT/ltp-hard-init" --set masking_mode=hard --overwrite
  transformers-prune finetune "$OUT/ltp-hard-init" --output-dir "$OUT/ltp" --train-file "$TRAIN" "${METHOD[@]}" --learning-rate 1e-5
}
adapler() {  # saliency targets from dense, AdapLeR from the pre-trained model (gamma 0.005, phi 0.0005, lr 3e-5)
  done_already "$OUT/train_saliency.jsonl" || transformers-prune saliency "$OUT/dense" --data-file "$TRAIN" \
    --text-column text --max-length 512 "${SALIENCY_ROWS[@]}" --batch-size 8 --output-file "$OUT/train_saliency.jsonl"
  done_already "$OUT/adapler" && return
  transformers-prune convert --to adapler-bert "$START" "$OUT/adapler-init" --set gamma=0.005 --set phi=0.0005 --overwrite
  transformers-prune finetune "$OUT/adapler-init" --output-dir "$OUT/adapler" --train-file "$OUT/train_saliency.jsonl" \
    "${COMMON[@]}" --learning-rate 3e-5
}
autobert() {  # from dense: targets of all 4,000 reviews, policy-only RL on all of them (BERT frozen, so a step costs
              # ~3 s), then joint distilled training on the first BUDGET reviews (all 4,000 without BUDGET), 8
              # rollouts each. alpha 0.5 here is the official IMDB alpha 1 on its padded length 512 (mean 274 tokens).
              # The official policy stage runs 3 epochs of 25,000 reviews at batch 32 (~2,340 steps) at lr 3e-5. Our 250 steps at lr 3e-4 (the same
              # total movement, Adam moving each weight about lr per step) left the keep probabilities bunched at
              # 0.5: after both stages keep_threshold 0.45 / 0.48 / 0.5 / 0.52 kept 96 / 86 / 60 / 33% after layer 1
              # (500 held-out test reviews, 2000-2499 of the seeded shuffle). At lr 3e-3 the policy decides: 0.1 /
              # 0.3 / 0.5 / 0.7 keep 67 / 41 / 28 / 20% after layer 1 on the same reviews.
  done_already "$OUT/train_autobert.jsonl" || transformers-prune autobert-targets "$OUT/dense" --data-file "$TRAIN" \
    --text-column text --max-length 512 --batch-size 8 --output-file "$OUT/train_autobert.jsonl"
  if ! done_already "$OUT/autobert-rl"; then
    transformers-prune convert --to autobert "$OUT/dense" "$OUT/autobert-rl-init" --overwrite --set training_stage=train_rl \
      --set alpha=0.5 --set guide_rate=0.5 --set rl_num_samples=8
    transformers-prune finetune "$OUT/autobert-rl-init" --output-dir "$OUT/autobert-rl" --train-file "$OUT/train_autobert.jsonl" \
      "${COMMON[@]}" --learning-rate 3e-3
  fi
  done_already "$OUT/autobert" && return
  transformers-prune convert --to autobert "$OUT/autobert-rl" "$OUT/autobert-both-init" --overwrite \
    --set training_stage=train_both --set train_teacher=true
  transformers-prune finetune "$OUT/autobert-both-init" --output-dir "$OUT/autobert" --train-file "$OUT/train_autobert.jsonl" \
    "${METHOD[@]}" --learning-rate 3e-5
}
bench() {
  bash "$(dirname "$0")/bench.sh" imdb "$DATA" "$OUT"
}

for step in "${@:-data dense transkimmer ltp adapler autobert bench}"; do
  for one in $step; do "$one"; done
done
