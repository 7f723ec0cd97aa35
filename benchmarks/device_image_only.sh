#!/usr/bin/env bash
# One GPU-machine call (exiflang device tool) with
#   carry [".devcarry/gpu/shards", ".devcarry/bench5/data/composites_recipe", ".devcarry/bench5/stub"]
# 1. Train the image-only baseline (positives = two crops of one photo, no EXIF) with the default model's
#    recipe: the options of runs/default_cpu (config small, 360 steps, 32 photos x 2 crops, lr 2e-3, warm-up
#    30, seed 0), only --objective image-only, on the GPU in float32 (--no-amp), from the shards of the same index.
# 2. Unpack the photos from the shards, rebuild the composites and benchmark the default and image-only models.
# Outputs under $OUT: results.tar.gz, image_only_model/ (config.json + model.safetensors), train.log.
set -euo pipefail
export PYTHONPATH="$PWD/.devcarry/bench5/stub:$PWD/src" PYTHONUNBUFFERED=1
SHARDS_DIR=${SHARDS_DIR:-.devcarry/gpu/shards}
IO=${IO:-runs/image_only_small}
if [ ! -f "$IO/model/config.json" ]; then
  python3 -c 'import sys; from exiflang.cli import main; sys.exit(main(sys.argv[1:]))' train --shards "$SHARDS_DIR" --config small --objective image-only --out "$IO" --steps 360 \
    --photos-per-batch 32 --crops-per-photo 2 --lr 2e-3 --warmup 30 --eval-every 60 --ckpt-every 120 --seed 0 \
    --device cuda --no-amp --no-progress --log-every 30 $( [ -f "$IO/checkpoint.safetensors" ] && echo --resume ) \
    > "${OUT:-/tmp}/train.log" 2>&1
fi
IO=$(cd "$IO" && pwd)
mkdir -p "${OUT:-/tmp}/image_only_model"
cp "$IO"/model/* "${OUT:-/tmp}/image_only_model/"
cp "$IO/metrics.jsonl" "${OUT:-/tmp}/image_only_metrics.jsonl"
python3 benchmarks/photos_from_shards.py "$SHARDS_DIR" /tmp/photos_from_shards
METHODS="exiflang:default exiflang:$IO/model" DATASETS=composites PHOTOS=/tmp/photos_from_shards \
  SHARDS=${SHARDS:-12} bash benchmarks/device_bench.sh
