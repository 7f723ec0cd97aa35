"""Does a denser patch grid help the learned map on desk files? (issue 19 item 3: "finer strides")

    .venv/bin/python benchmarks/density_check.py --root runs/desk --out runs/ps30 \
        --model default=default --model "3,200-step fine-tune=runs/ft_long3/model" [--per-side 15,30] [--twins jpeg90,social]

Each (twin, model, density) is one `exiflang bench --method exiflang` run on ROOT/composites/<twin> (the desk
table's camera-disjoint composites), resumable under OUT/<twin>_<model slug>_ps<N>; the table printed is p-mAP /
detection AP per row, every density of a model side by side, so the same files and model compare.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from camera_disjoint import parse_models, slug  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def bench(folder: Path, model: str, per_side: int, out: Path, cache: Path) -> dict:
    """One resumable bench run; its summary."""
    if not (out / "summary.json").is_file():
        cmd = [str(REPO / ".venv/bin/exiflang"), "bench", "--dataset", f"generic:{folder}", "--method", "exiflang",
               "--model", model, "--per-side", str(per_side), "--no-maps", "--cache-dir", str(cache), "--out", str(out)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "summary.json").read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", type=Path, default=Path("runs/desk"), help="desk root (default %(default)s)")
    p.add_argument("--out", type=Path, default=Path("runs/ps30"), help="bench outputs (default %(default)s)")
    p.add_argument("--model", action="append", default=[], metavar="LABEL=PATH", help="a learned model (repeatable)")
    p.add_argument("--per-side", default="15,30", help="densities (default %(default)s)")
    p.add_argument("--twins", default="jpeg90,social",
                   help="desk twins, 'lossless' for the composites themselves (default %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=Path("runs/emb_cache15"), help="embedding cache")
    args = p.parse_args(argv)
    models = parse_models(args.model or ["default=default"])
    densities = [int(d) for d in args.per_side.split(",")]
    print("| twin | model | " + " | ".join(f"{d} per side" for d in densities) + " |")
    print("|---|---|" + "---|" * len(densities))
    for twin in args.twins.split(","):
        folder = args.root / "composites" / ("." if twin == "lossless" else twin)
        for label, path in models:
            cells = []
            for d in densities:
                s = bench(folder, path, d, args.out / f"{twin}_{slug(label)}_ps{d}", args.cache_dir)
                cells.append(f"{s['pmap']:.3f} / {s.get('det_ap') or 0:.3f}")
            print(f"| {twin} | {label} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
