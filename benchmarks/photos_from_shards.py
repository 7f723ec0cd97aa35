"""Unpack the photos of webdataset shards (`exiflang shard`) back into <out>/<relpath> (the original bytes).

    python benchmarks/photos_from_shards.py SHARD_DIR OUT_DIR

Used on GPU machines, where the shards travel but the photo folder does not: make-splices --rebuild then
re-creates the composites from these photos (their pixels are checked against the recipe's hashes).
"""
from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path


def main(shard_dir: str, out_dir: str) -> int:
    """Write every <key>.jpg of every shard to out_dir/<relpath of its <key>.json>; print the count."""
    out, n = Path(out_dir), 0
    for shard in sorted(Path(shard_dir).glob("*.tar")):
        jpgs: dict[str, bytes] = {}
        metas: dict[str, dict] = {}
        with tarfile.open(shard) as tar:
            for member in tar:
                key, _, ext = member.name.partition(".")
                data = tar.extractfile(member).read() if member.isfile() else b""
                if ext == "jpg":
                    jpgs[key] = data
                elif ext == "json":
                    metas[key] = json.loads(data)
        for key, data in jpgs.items():
            dst = out / metas[key]["relpath"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
            n += 1
    print(f"{n} photo(s) unpacked into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
