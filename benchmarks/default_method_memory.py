"""Peak memory (the child's VmHWM) and time of `exiflang detect` on a 24 MP photo, the learned map alone beside the
default fusion, in one run: `.venv/bin/python benchmarks/default_method_memory.py` (writes under /tmp/x)."""
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

Path("/tmp/x").mkdir(exist_ok=True)
sys.path.insert(0, "tests")  # the 24 MP photo is the large-photo tests' own (_tiled), the peak reader theirs too
spec = importlib.util.spec_from_file_location("large_photos", "tests/test_large_photos.py")
tl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tl)
bench = tl._benchmark_module()
big = tl._tiled(Path("../shared/data/photos"), Path("/tmp/x/big24.jpg"), 5664, 4256)
for method in ("exiflang", "fusion"):
    t0 = time.time()
    cmd = [sys.executable, "-c", bench.PEAK_WRAPPER, "detect", str(big), "--out", f"/tmp/x/o_{method}",
           "--no-exif-check", "--redo", "--method", method]  # --redo: a finished report there is not a measurement
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    print(method, proc.returncode, f"peak {bench.peak_rss_bytes(proc.stderr) / 1e9:.2f} GB",
          f"{time.time() - t0:.0f} s", proc.stderr[-300:] if proc.returncode else "")
