#!/usr/bin/env bash
# SQuAD v1.1 frontier of transkimmer-bert and autobert against the dense model: only the dev set is available
# offline, so the models train on the questions of its first 40 articles and are scored on the other 8.
#
# Usage: bash examples/frontier/run_squad.sh [SHARED_DATA_DIR] [OUTPUT_DIR] [STEP ...]
# With no STEP every step runs in order; a step whose output exists is skipped.
# EPOCHS=1 (environment) is the short recipe of the committed results: dense and Transkimmer one epoch each instead of
# two (about 80 minutes each on one thread of this project's 2-core CPU, run side by side); autobert is unchanged.
set -euo pipefail
DATA=${1:-../shared/data}
OUT=${2:-runs/frontier/squad}
shift $(( $# > 2 ? 2 : $# ))
MODEL=$(python -c "from transformers_prune.resources import default_model_dir; print(default_model_dir())")
EPOCHS=${EPOCHS:-2}
COMMON=(--train-file "$OUT/train40.json" --max-length 384 --doc-stride 128 --batch-size 16)
done_already() { [ -e "$1" ] && echo "skip: $1 exists"; }

data() {  # articles 0-39 for training, 40-47 for evaluation, in the official file's order
  done_already "$OUT/eval8.json" && return
  mkdir -p "$OUT"
  python - "$DATA/squad/v1.1/dev-v1.1.json" "$OUT" <<'PY'
import json, sys
squad = json.load(open(sys.argv[1], encoding="utf-8"))
for name, articles in (("train40.json", squad["data"][:40]), ("eval8.json", squad["data"][40:])):
    json.dump({"data": articles, "version": squad["version"]}, open(f"{sys.argv[2]}/{name}", "w", encoding="utf-8"))
PY
}
dense() {  # two epochs at lr 3e-5, HF's run_qa.py defaults for SQuAD
  done_already "$OUT/dense" || transformers-prune finetune-qa "$MODEL" --output-dir "$OUT/dense" "${COMMON[@]}" \
    --epochs "$EPOCHS" --learning-rate 3e-5
}
transkimmer() {  # from the pre-trained model, the official SQuAD skim_coefficient 0.3
  done_already "$OUT/transkimmer" && return
  transformers-prune convert --to transkimmer-bert "$MODEL" "$OUT/transkimmer-init" --set skim_coefficient=0.3 --overwrite
  transformers-prune finetune-qa "$OUT/transkimmer-init" --output-dir "$OUT/transkimmer" "${COMMON[@]}" \
    --epochs "$EPOCHS" --learning-rate 3e-5
}
targets() {  # TR-BERT's imitation scores and dense's span logits for every training window (90 s per 2,000 questions)
  done_already "$OUT/autobert_targets.safetensors" || transformers-prune autobert-targets "$OUT/dense" \
    --squad-file "$OUT/train40.json" --max-length 384 --doc-stride 128 --output-file "$OUT/autobert_targets.safetensors"
}
autobert() {  # TR-BERT's policy from dense: stage "train_rl" (BERT frozen, 8 rollouts) on every training question,
              # imitating the residual targets for the first 20% of its steps (run_squad.py's guide_rate). The
              # official RL stage runs ~12k steps at lr 3e-5 (3 epochs of SQuAD 2.0's 130k questions at batch 32);
              # Adam moves each weight about lr per step, so the 575 steps here take lr 6e-4 for the same total
              # movement (at 3e-5 the policy stayed at its random start, keeping 50% of the tokens at random). The
              # official SQuAD alpha is 5 on its padded length 384, 2.5 in ours for windows of about 180 real
              # tokens; at 2.5 the policy collapsed within a third of the steps to keeping 3.5% of the tokens after
              # layer 1 (the joint stage then started at a distillation loss of ~10.7, about chance: 2 ln 180), so
              # alpha 0.5. The committed results bench this stage's model (its BERT is dense's); 45 minutes here.
  done_already "$OUT/autobert" && return
  transformers-prune convert --to autobert "$OUT/dense" "$OUT/autobert-rl-init" --overwrite --set training_stage=train_rl \
    --set alpha=0.5 --set guide_rate=0.2 --set rl_num_samples=8
  transformers-prune finetune-qa "$OUT/autobert-rl-init" --output-dir "$OUT/autobert" "${COMMON[@]}" \
    --targets-file "$OUT/autobert_targets.safetensors" --learning-rate 6e-4
}
autobert_joint() {  # not in the default steps: the original's third stage, joint training distilled from dense's
                    # span logits (train_teacher) on the first 2,000 questions; at the ~94% of tokens the policy
                    # keeps, 17 s a step here (36 minutes), beyond the committed run's budget
  done_already "$OUT/autobert-joint" && return
  transformers-prune convert --to autobert "$OUT/autobert" "$OUT/autobert-both-init" --overwrite \
    --set training_stage=train_both --set train_teacher=true
  transformers-prune finetune-qa "$OUT/autobert-both-init" --output-dir "$OUT/autobert-joint" "${COMMON[@]}" \
    --targets-file "$OUT/autobert_targets.safetensors" --max-train-samples 2000 --learning-rate 3e-5
}
bench() {
  bash "$(dirname "$0")/bench.sh" squad "$DATA" "$OUT"
}

for step in "${@:-data dense transkimmer targets autobert bench}"; do
  for one in $step; do "$one"; done
done
