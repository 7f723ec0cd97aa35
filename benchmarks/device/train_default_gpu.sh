#!/usr/bin/env bash
# Train the built-in default model on one lent GPU, within a fixed wall-time budget.
# Prepared here (see docs/results/training.md):
#   exiflang index ../shared/data/photos --out .devcarry/index
#   python benchmarks/device/compact_shards.py .devcarry/index .devcarry/gpu/shards   # lossless, pixel-identical
#   .devcarry/gpu/{minilm/ (config+tokenizer only), text_features.safetensors, meta.json, tag_counts.json}
# The frozen MiniLM text features are precomputed on the CPU, so the GPU needs no MiniLM weights.
set -uo pipefail
G=.devcarry/gpu
OUT=${OUT:-/tmp/exiflang_out}
TRAIN_SECONDS=${TRAIN_SECONDS:-300}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 EXIFLANG_MINILM_DIR=$G/minilm
COMMON=(--config small --photos-per-batch 64 --crops-per-photo 4 --lr 1e-3 --warmup 200 --device cuda
        --text-features $G/text_features.safetensors --no-progress --seed 0)
nvidia-smi -L
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
python3 benchmarks/device/shards_to_index.py $G/shards /tmp/unp $G || exit 1

echo "== throughput"
[ "${SKIP_THROUGHPUT:-0}" = 1 ] || timeout 90 python3 benchmarks/train_throughput.py --index /tmp/unp/index --device cuda --photos-per-batch 64 \
    --text-features $G/text_features.safetensors 2>&1 | tee "$OUT/throughput_cuda.txt"

echo "== timing probe"
python3 -m exiflang.cli train --index /tmp/unp/index "${COMMON[@]}" --steps 100 --eval-every 100000 \
    --ckpt-every 100000 --out /tmp/probe > /tmp/probe.log 2>&1 || { tail -30 /tmp/probe.log; exit 1; }
STEPS=$(python3 - "$TRAIN_SECONDS" <<'PY'
import json, sys
ev = [json.loads(l) for l in open("/tmp/probe/metrics.jsonl")]
tr = [e for e in ev if e["event"] == "train"]
per_step = (tr[-1]["elapsed_s"] - tr[0]["elapsed_s"]) / (tr[-1]["step"] - tr[0]["step"])
print(max(500, int(float(sys.argv[1]) / per_step / 100) * 100))
PY
)
echo "steps for ${TRAIN_SECONDS}s: $STEPS"

echo "== training"
python3 -m exiflang.cli train --index /tmp/unp/index "${COMMON[@]}" --steps "$STEPS" --eval-every 500 \
    --ckpt-every 1000 --out /tmp/run > "$OUT/train.log" 2>&1
rc=$?
cp /tmp/run/metrics.jsonl "$OUT/" 2>/dev/null
mkdir -p "$OUT/model" && cp /tmp/run/model/* "$OUT/model/" 2>/dev/null
grep -E "held-out|saved|error" "$OUT/train.log" | tail -20
exit $rc
