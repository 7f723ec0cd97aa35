#!/usr/bin/env bash
# Every camera-disjoint figure of docs/results/generalisation.md, in order (resumable: re-run after a kill).
#   benchmarks/generalisation.sh [NEW_MODEL] [OLD_MODEL]
# NEW_MODEL: the trained candidate (default runs/v2/model, from the README's training line);
# OLD_MODEL: the previously shipped default (git show b38c8dd:src/exiflang/weights/default/... > runs/old_default/).
set -euo pipefail
cd "$(dirname "$0")/.."
NEW=${1:-runs/v2/model}
OLD=${2:-runs/old_default}
X=.venv/bin/exiflang
PY=.venv/bin/python
CACHE=runs/emb_cache
# Composites: held-out cameras only; test (seed 0, 60 + 60) with its twins, validation (seed 1, 40 + 40) with
# twins, and test-seed pastes that keep their source's 8x8 phase.
[ -f runs/cd_test/manifest.csv ] || $X make-splices ../shared/data/photos --cameras heldout --twins --n 60 --seed 0 --out runs/cd_test
[ -f runs/cd_val/manifest.csv ] || $X make-splices ../shared/data/photos --cameras heldout --twins --n 40 --seed 1 --out runs/cd_val
[ -f runs/cd_test_keep/manifest.csv ] || $X make-splices ../shared/data/photos --cameras heldout --phase keep --n 60 --seed 0 --out runs/cd_test_keep
# 1. Validation only: the learned image score and the fusion rule (written into the package).
[ -s runs/tune_fusion.txt ] || $PY benchmarks/tune_fusion.py --splices runs/cd_val --model "$NEW" --cache-dir $CACHE \
    --twins lossless,jpeg90,resized75_jpeg90 --write | tee runs/tune_fusion.txt
# 2. The headline table: test composites and all three twins (+ q75), new and old default in one pass, same folders.
$PY benchmarks/camera_disjoint.py --splices runs/cd_test --out runs/cd_bench --cache-dir $CACHE \
    --twins jpeg75,jpeg90,resized75_jpeg90,lossless --model "new default=$NEW" --model "old default=$OLD" \
    --baselines noise,grid,dq,fusion --fusion-model "$NEW" | tee runs/cd_bench_all.txt
# 3. Pastes that keep their source's 8x8 phase (lossless).
$PY benchmarks/camera_disjoint.py --splices runs/cd_test_keep --out runs/cd_keep_bench --cache-dir $CACHE --twins lossless \
    --model "new default=$NEW" --model "old default=$OLD" --baselines grid,fusion --fusion-model "$NEW" | tee runs/cd_keep.txt
# 4. Recipe ablations at a reduced budget, evaluated at --per-side 15 on lossless and all three twins
# (old_recipe: the previous default's recipe trained camera-disjoint, command in docs/results/generalisation.md).
${SKIP_ABLATION_TRAINING:+:} benchmarks/ablations.sh runs/ablations
A=runs/ablations
ROWS=(--model "new default (full budget)=$NEW")
for pair in "full=full recipe" "no_history=no processing history" "no_phase_tags=no block-phase tags" \
            "no_patch_patch=no patch-patch term" "no_jpeg_zeros=no JPEG-zero features" "image_only=image-only objective" \
            "old_recipe=previous recipe (small, camera-disjoint)"; do
    [ -f "$A/${pair%%=*}/model/config.json" ] && ROWS+=(--model "${pair#*=}=$A/${pair%%=*}/model")  # the runs that finished
done
$PY benchmarks/camera_disjoint.py --splices runs/cd_test --out runs/cd_ablations --cache-dir $CACHE --per-side 15 \
    --twins lossless,jpeg90,jpeg75,resized75_jpeg90 "${ROWS[@]}" --model "old default=$OLD" \
    --baselines random,noise,grid --random-like "$NEW" | tee runs/cd_ablations.txt
