"""Print the camera-disjoint tables from the summary.json files under bench roots (one table per twin).

    .venv/bin/python benchmarks/cd_tables.py runs/cd_bench runs/cd_bench_oldpass

Rows are the method folders that benchmarks/camera_disjoint.py wrote (every (method, twin) run of the roots).
"""
import json,glob,sys,os
roots=sys.argv[1:]
for twin in ["lossless","jpeg90","jpeg75","resized75_jpeg90"]:
    rows=[]
    for f in sorted([g for r in roots for g in glob.glob(f"{r}/{twin}/*/summary.json")]):
        s=json.load(open(f)); st=(s.get("camera_overlap") or {}).get("status","?").split(" (")[0]
        c=s["counts"]
        rows.append(f"| {os.path.basename(os.path.dirname(f))} | {s['pmap']:.3f} | {s['pmap_strict']:.3f} | {s['ciou']:.3f} | {s['det_ap']:.3f} | {s['det_auc']:.3f} | {st} | {c['manipulated']}/{c['authentic']} |")
    if rows:
        print(f"\n**{twin}**\n\n| method | p-mAP | strict p-mAP | cIoU | det AP | det AUC | cameras | n |\n|---|---|---|---|---|---|---|---|"); print("\n".join(rows))
