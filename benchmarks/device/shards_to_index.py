"""Unpack webdataset shards into a photo folder plus an index that points at it (for machines without ExifTool).

Usage: python benchmarks/device/shards_to_index.py SHARDS OUT_DIR [META_DIR]
Writes OUT_DIR/photos/<key>.jpg and OUT_DIR/index/records.jsonl (+ meta.json/tag_counts.json copied from META_DIR).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from exiflang.data.shards import iter_samples


def main(shards: str, out_dir: str, meta_dir: str | None = None) -> None:
    """Write the photos and a records.jsonl with absolute paths to them."""
    out = Path(out_dir).resolve()
    (out / "photos").mkdir(parents=True, exist_ok=True)
    (out / "index").mkdir(parents=True, exist_ok=True)
    n = 0
    with open(out / "index" / "records.jsonl", "w") as f:
        for key, data, rec in iter_samples(shards):
            path = out / "photos" / f"{key}.jpg"
            path.write_bytes(data)
            f.write(json.dumps(dict(rec, path=str(path))) + "\n")
            n += 1
    (out / "index" / "rejects.jsonl").write_text("")
    for name in ("meta.json", "tag_counts.json"):
        if meta_dir and (Path(meta_dir) / name).is_file():
            shutil.copy(Path(meta_dir) / name, out / "index" / name)
    print(f"{n} photos unpacked to {out}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
