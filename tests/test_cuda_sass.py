"""What the step kernels compile to for sm_90 (NVRTC with the backend's own source and options,
disassembled by cuobjdump; no GPU needed): every global access of a step kernel is LDG/STG, never a
generic LD/ST, and the aligned path moves 128 bits per instruction, evict-first. Needs cuobjdump and
nvdisasm (CI installs the pip wheels nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm); skipped without."""

import glob
import os
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("cupy")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dev"))
import sass_report  # noqa: E402 - after the path

from fusedopt import _core  # noqa: E402
from fusedopt.backends import cuda  # noqa: E402


def _tool_folder():
    wheels = glob.glob(os.path.join(os.path.dirname(os.path.dirname(sys.executable)), "lib", "python3*",
                                    "site-packages", "nvidia", "cu*", "bin", "cuobjdump"))
    if wheels:
        return os.path.dirname(wheels[0])
    found = shutil.which("cuobjdump")
    return os.path.dirname(found) if found else None


FOLDER = _tool_folder()
pytestmark = pytest.mark.skipif(FOLDER is None, reason="no cuobjdump (pip install nvidia-cuda-cuobjdump "
                                                       "nvidia-cuda-nvdisasm)")


def step_kernels():
    """Variant 0 of every elementwise rule in float32, every variant of Adam in both types, and the
    capturable Adam kernels."""
    names = []
    for index, rule in enumerate(_core.rules()):
        if cuda.kernels_of(index, 0) == ("step",):
            names.append(cuda.step_kernel_name(index, 0, "float32"))
        if rule["name"] == "adam":
            names += [cuda.step_kernel_name(index, v, t, k) for v in range(len(rule["present"]))
                      for t in ("float32", "float64") for k in ("step", "step_from_device")]
    return sorted(set(names))


def test_step_kernels_use_global_128_bit_evict_first_accesses_only(monkeypatch):
    monkeypatch.setenv("CUOBJDUMP_DIR", FOLDER)
    names = step_kernels()
    cubin, _log, lowered = sass_report.compile_cubin("optimizers", names, "90")
    counts = sass_report.per_function(sass_report.sass(cubin))
    assert set(lowered) <= set(counts), "a kernel is missing from the disassembly"
    for mangled, name in lowered.items():
        kinds = counts[mangled]
        generic = [k for k in kinds if k.split(".")[0] in ("LD", "ST", "LDL", "STL")]
        assert not generic, f"{name}: generic or local accesses {generic}"
        assert kinds["LDG.E.EF.128"] >= 2 * 2 and kinds["STG.E.EF.128"] >= 2, f"{name}: {dict(kinds)}"
