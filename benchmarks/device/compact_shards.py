"""Shards of an index whose JPEGs are losslessly re-packed to fit the device tool's 64 MiB transfer limit.

`jpegtran -copy none -optimize -progressive` keeps every DCT coefficient and quantisation table (so the
decoded pixels, and with them the camera's traces, are identical: checked here for every photo), and drops
the EXIF blocks, which training does not read from the file (the tags travel in each sample's JSON record).
Usage: python benchmarks/device/compact_shards.py INDEX OUT_DIR
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from exiflang.data.index import load_records
from exiflang.data.shards import write_shards


def repack(src: Path, dst: Path) -> None:
    """Lossless JPEG transcode without metadata; raises if decoded pixels differ."""
    subprocess.run(["jpegtran", "-copy", "none", "-optimize", "-progressive", "-outfile", str(dst), str(src)],
                   check=True)
    with Image.open(src) as a, Image.open(dst) as b:
        if not np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))):
            raise RuntimeError(f"{src}: repacked pixels differ")


def main(index: str, out_dir: str) -> None:
    """Repack every indexed photo and write shards that keep the original records (sha256 included)."""
    records = load_records(index)
    before = after = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, rec in enumerate(records):
            dst = Path(tmp) / f"{i:06d}.jpg"
            repack(Path(rec["path"]), dst)
            before += Path(rec["path"]).stat().st_size
            after += dst.stat().st_size
            rec["path"] = str(dst)
        manifest = write_shards(records, out_dir, max_bytes=64 << 20, progress=False)
    print(json.dumps({"photos": len(records), "mb_before": round(before / 2**20, 1),
                      "mb_after": round(after / 2**20, 1), "shards": len(manifest["shards"])}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
