#!/usr/bin/env bash
# Forensic benchmark tables of docs/results/forensics_bench.md, from one command:
#   benchmarks/run_all.sh [OUT_ROOT]            (default OUT_ROOT: runs/bench)
# Datasets: the CASIA v1 split in ../shared/data/casia1 and composites made from ../shared/data/photos
# (make-splices --n $N --seed $SEED). Methods: the default model, the same encoder with random weights, the
# classical noise-level baseline, and (IMAGE_ONLY_MODEL=dir) an image-only contrastive model.
# Environment knobs:
#   DEVICE=cpu|cuda   SHARDS=K (parallel processes per run; results identical)   MAPS=1|0 (per-image maps)
#   CASIA=dir PHOTOS=dir COMPOSITES=dir N=60 SEED=0 MODEL=default IMAGE_ONLY_MODEL=dir PYTHON=.venv/bin/python
#   DATASETS="casia composites" (which tables)   METHODS="exiflang:MODEL random:MODEL noise:-" (method:model pairs to run)
#   LIMIT=n (only the first n images of each dataset: a quick check, not the tables)
# Re-running resumes: finished images are skipped and embeddings come from the cache ($EXIFLANG_CACHE).
set -euo pipefail
OUT_ROOT=${1:-runs/bench}
DATA=${EXIFLANG_DATA:-../shared/data}
CASIA=${CASIA:-$DATA/casia1}
PHOTOS=${PHOTOS:-$DATA/photos}
N=${N:-60}
SEED=${SEED:-0}
COMPOSITES=${COMPOSITES:-$OUT_ROOT/composites_n${N}_s${SEED}}
DEVICE=${DEVICE:-cpu}
SHARDS=${SHARDS:-1}
MODEL=${MODEL:-default}
PY=${PYTHON:-.venv/bin/python}
# `python -m exiflang.cli` would load cli.py twice (as __main__ and as exiflang.cli), so user errors would
# surface as tracebacks; call its main() instead.
exl() { "$PY" -c 'import sys; from exiflang.cli import main; sys.exit(main(sys.argv[1:]))' "$@"; }
MAPS_FLAG=""
[ "${MAPS:-1}" = 1 ] || MAPS_FLAG="--no-maps"
[ -z "${LIMIT:-}" ] || MAPS_FLAG="$MAPS_FLAG --limit $LIMIT"
METHODS=${METHODS:-"exiflang:$MODEL random:$MODEL noise:-"}
[ -n "${IMAGE_ONLY_MODEL:-}" ] && METHODS="$METHODS exiflang:$IMAGE_ONLY_MODEL"
mkdir -p "$OUT_ROOT"

# 1. Composites: made once (deterministic for the seed), or rebuilt from a recipe (manifest + masks).
if [[ " ${DATASETS:-composites} " != *" composites "* ]]; then
  :
elif [ ! -f "$COMPOSITES/manifest.csv" ]; then
  exl make-splices "$PHOTOS" --out "$COMPOSITES" --n "$N" --seed "$SEED"
elif [ ! -d "$COMPOSITES/spliced" ]; then
  exl make-splices "$PHOTOS" --out "$COMPOSITES" --rebuild
fi

# 2. One benchmark run per (dataset, method).
runs=()
DATASETS=${DATASETS:-"casia composites"}
specs=()
[[ " $DATASETS " == *" casia "* ]] && specs+=("manifest:$CASIA")
[[ " $DATASETS " == *" composites "* ]] && specs+=("generic:$COMPOSITES")
for ds in "${specs[@]}"; do
  dsname=$(basename "${ds#*:}")
  for m in $METHODS; do
    method=${m%%:*}
    model=${m#*:}
    name="${dsname}__${method}"
    mname=$(basename "$model")
    [ "$mname" = model ] && mname=$(basename "$(dirname "$model")")  # a run's <dir>/model folder
    [ "$method" = noise ] || name="${name}_${mname}"
    args=(bench --dataset "$ds" --method "$method" --out "$OUT_ROOT/$name" --device "$DEVICE" $MAPS_FLAG)
    [ "$method" = noise ] || args+=(--model "$model")
    runs+=("$(printf '%q ' "${args[@]}")")
  done
done
if [ "$SHARDS" -gt 1 ]; then  # all shards of all runs at once, then gather
  for r in "${runs[@]}"; do
    for k in $(seq 0 $((SHARDS - 1))); do
      eval "exl $r --shard $k/$SHARDS" >"$OUT_ROOT/shard_${k}_${RANDOM}.log" 2>&1 &
    done
  done
  wait
fi
for r in "${runs[@]}"; do
  eval "exl $r"
done

# 3. Tables.
$PY benchmarks/bench_tables.py "$OUT_ROOT" | tee "$OUT_ROOT/tables.md"
