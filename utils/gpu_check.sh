#!/usr/bin/env bash
# One short GPU check (under 8 minutes on one GPU; never needed by the tests):
#   1. a bf16 training step of every model type, packed == masked on CUDA, flash-attn varlen against the
#      re-padded SDPA block (utils/gpu_check.py; flash-attn only if it is installed or installs);
#   2. `bench` at batch 1 and 32 on CUDA: a dense MiniLM-shaped classifier and a Transkimmer from it that skims.
# Results go to $OUT (default runs/gpu_check): checks.json, bench/bench.{json,md}, and the logs.
#
#     bash utils/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT="${OUT:-runs/gpu_check}"
mkdir -p "$OUT"
status=0

python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())" || exit 1
if ! python -c "import flash_attn" 2>/dev/null; then
    # Optional: offline machines cannot fetch it, and building it from source takes far longer than this check.
    timeout 90 python -m pip install --quiet --only-binary=:all: flash-attn >"$OUT/flash_attn_install.log" 2>&1 \
        || echo "flash-attn is not installed (see $OUT/flash_attn_install.log): its check is skipped"
fi

timeout 240 python utils/gpu_check.py --output "$OUT/checks.json" >"$OUT/checks.log" 2>&1 || { echo "gpu_check.py failed:"; tail -20 "$OUT/checks.log"; status=1; }
[ -f "$OUT/checks.json" ] && cat "$OUT/checks.json"

timeout 60 python utils/gpu_check.py --write-checkpoints "$OUT/checkpoints" || status=1
timeout 180 python -m transformers_prune bench "$OUT/checkpoints/dense" "$OUT/checkpoints/transkimmer" --task sst2 \
    --device cuda --batch-sizes 1 32 --max-examples 256 --baselines first --peers none --output-dir "$OUT/bench" \
    >"$OUT/bench.log" 2>&1 || { echo "bench failed:"; tail -20 "$OUT/bench.log"; status=1; }
[ -f "$OUT/bench/bench.md" ] && cat "$OUT/bench/bench.md"
exit $status
