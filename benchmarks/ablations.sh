#!/usr/bin/env bash
# Recipe ablations at one reduced CPU budget (150 steps x 32 photos x 4 crops, 1/19 of the default's patches):
# the full recipe and each component switched off, plus the image-only objective, all camera-disjoint.
# Then benchmarks/camera_disjoint.py puts them side by side (see docs/results/generalisation.md).
#   benchmarks/ablations.sh [RUNS_DIR]          (needs runs/index from `exiflang index ../shared/data/photos`)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/ablations}
TEXT=(--text-features "$RUNS/text_features.safetensors")  # frozen MiniLM features, computed once for all runs
COMMON=(--index runs/index --camera-split heldout --steps 150 --photos-per-batch 32 --crops-per-photo 4 --lr 1e-3
        --warmup 30 --eval-every 150 --threads "${THREADS:-2}" --ckpt-every 100 --workers 1 --no-progress)
FULL=(--config grid --history-prob 0.5 --patch-patch-weight 0.5)
mkdir -p "$RUNS"
run() { local name=$1; shift; [ -f "$RUNS/$name/model/config.json" ] && return 0
        .venv/bin/exiflang train "${COMMON[@]}" "${TEXT[@]}" "$@" --out "$RUNS/$name" $( [ -f "$RUNS/$name/checkpoint.safetensors" ] && echo --resume ); }
run full "${FULL[@]}"
run no_jpeg_zeros --config benchmarks/configs/grid-nozeros.json --history-prob 0.5 --patch-patch-weight 0.5
run no_phase_tags --config grid --history-prob 0.5 --no-phase-tags --patch-patch-weight 0.5
run image_only --config grid --objective image-only --history-prob 0.5
run no_history --config grid --history-prob 0 --phase-tags --patch-patch-weight 0.5
run no_patch_patch --config grid --history-prob 0.5 --patch-patch-weight 0
