"""How many photos of a composite set the previously shipped default trained on (it predates the camera split).

    .venv/bin/python benchmarks/old_default_overlap.py --splices runs/cd_test --old-model runs/old_default --index runs/index

The previous default (`small-10860551d809`) trained on the first batch of ../shared/data/photos (the first 302 rows
of photos/MANIFEST.csv) minus a photo-level held-out share chosen by content hash (`data.patches.split_by_photo`,
its `val_fraction` is in its config.json). This recomputes that split and counts, per composite, whether its target
(background) and source (pasted) photos were training photos of that model.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

FIRST_BATCH_ROWS = 302  # photos/MANIFEST.csv rows of the first batch (../shared/data/README.md)


def main() -> None:
    """Print the overlap counts."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--splices", type=Path, required=True, help="a make-splices folder (manifest.csv)")
    p.add_argument("--old-model", type=Path, required=True, help="the previous default's folder (config.json)")
    p.add_argument("--index", type=Path, required=True, help="the index of ../shared/data/photos (records.jsonl)")
    p.add_argument("--photos", type=Path, default=Path("../shared/data/photos"), help="the shared photos folder")
    args = p.parse_args()
    val_fraction = float(json.loads((args.old_model / "config.json").read_text())["train"]["recipe"]["val_fraction"])
    with (args.photos / "MANIFEST.csv").open(newline="") as fh:
        first_batch = {row["path"] for row in list(csv.DictReader(fh))[:FIRST_BATCH_ROWS]}
    sha = {}
    for line in (args.index / "records.jsonl").read_text().splitlines():
        rec = json.loads(line)
        sha[rec["relpath"]] = rec["sha256"]
    held = lambda key: int(key[:8], 16) / 0xFFFFFFFF < val_fraction  # the rule of split_by_photo
    trained = {rel for rel in first_batch if rel in sha and not held(sha[rel])}
    print(f"previous default: {len(trained)} training photos recomputed (val_fraction {val_fraction})")
    with (args.splices / "manifest.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    spliced = [r for r in rows if r["label"] == "1"]
    authentic = [r for r in rows if r["label"] == "0"]
    target = sum(r["target"] in trained for r in spliced)
    source = sum(r["source"] in trained for r in spliced)
    both = sum(r["target"] in trained and r["source"] in trained for r in spliced)
    own = sum(r["target"] in trained for r in authentic)
    print(f"spliced composites: target photo trained on {target}/{len(spliced)}, source photo {source}/{len(spliced)}, "
          f"both {both}/{len(spliced)}")
    print(f"authentic images: trained on {own}/{len(authentic)}")


if __name__ == "__main__":
    main()
