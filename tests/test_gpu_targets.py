"""benchmarks/gpu_targets.py reads issue 18's targets off gpu_check.sh's files: hit and miss as the
figures say, and 'not measured' for what a run left out (no GPU needed)."""

import json
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_targets.py"


def adam(size, backend, ms, **extra):
    return dict(name="adam", size=size, backend=backend, ms=ms, **extra)


def test_targets_are_read_off_the_results(tmp_path):
    rows = [adam("1e8", "fusedopt-cuda", 10.0, frac_traffic=0.95, kernel_frac_traffic=0.89),
            adam("1e8", "torch-cuda-fused", 13.0),
            adam("model200", "fusedopt-cuda", 10.0), adam("model200", "torch-cuda-fused", 11.0),
            adam("small200", "fusedopt-cuda", 0.1), adam("small200", "torch-cuda-fused", 0.25)]
    (tmp_path / "bench_gpu.json").write_text(json.dumps({"rows": rows}))
    host = [{"tensors": 200, "case": "steady", "us_per_step": 14.0, "target_us": 15.0},
            {"tensors": 2000, "case": "steady", "us_per_step": 31.0, "target_us": 30.0},
            {"tensors": 2000, "case": "fresh", "us_per_step": 900.0, "target_us": None}]
    (tmp_path / "bench_gpu_host.json").write_text(json.dumps({"rows": host}))
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, check=True).stdout
    verdict = {m.group(2): m.group(1) for m in re.finditer(r"^(hit|MISS|----)\s+([^:]+):", out, re.M)}
    assert verdict == {
        "Adam 1e8 (kernel)": "MISS", "Adam 1e8 (step)": "hit", "Adam 1e8": "hit",
        "Adam 1e9": "----", "Adam model200": "MISS", "Adam small200": "hit",
        "host time per steady step, 200 tensors": "hit", "host time per steady step, 2000 tensors": "MISS"}, out
    assert "1.30x" in out and "2.50x" in out and "not measured" in out
