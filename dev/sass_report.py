"""What the CUDA kernels compile to, without a GPU: NVRTC (through CuPy, with the backend's own
source text and options) builds a cubin for a real architecture, and cuobjdump disassembles it. For
each kernel: registers, stack frame and spills (ptxas), and its global memory instructions by kind,
so that a reader can check the step kernels load and store with LDG/STG (not generic LD/ST), 128 bits
wide, evict-first (.EF).

    python dev/sass_report.py [--arch 90] [--kernels adam|all] [--sass-out FILE]

Needs CuPy with an NVRTC library, and cuobjdump + nvdisasm on PATH (or in CUOBJDUMP_DIR): on a machine
without the CUDA toolkit, `pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm` brings both (their
bin folder is nvidia/cu13/bin in site-packages)."""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

from cupy.cuda import nvrtc

from fusedopt.backends import cuda

INSTRUCTION = re.compile(r"\b((?:LDG|STG|LD|ST|LDS|STS|LDL|STL)(?:\.[A-Z0-9]+)*)\b")


def adam_kernels():
    rule = next(i for i, r in enumerate(cuda._core.rules()) if r["name"] == "adam")
    names = [cuda.step_kernel_name(rule, v, t) for v in (0, 1) for t in ("float32", "float64")]
    names += [cuda.step_kernel_name(rule, 0, "float32", "step_from_device")]
    return names + list(cuda.TRAFFIC_KERNELS)


def compile_cubin(source: str, names, arch: str):
    prog = nvrtc.createProgram(cuda.kernel_source(source), f"{source}.cu", [], [])
    for name in names:
        nvrtc.addNameExpression(prog, name)
    nvrtc.compileProgram(prog, list(cuda.compile_options()) + [f"-arch=sm_{arch}", "--ptxas-options=-v"])
    lowered = {nvrtc.getLoweredName(prog, n): n for n in names}
    return whole_elf(nvrtc.getCUBIN(prog)), nvrtc.getProgramLog(prog), lowered


def whole_elf(data: bytes) -> bytes:
    """The cubin as NVRTC made it. CuPy 14's getCUBIN drops its last byte (a zero: the file's tail is
    padding), which cuobjdump then refuses; the ELF header says how long it is."""
    import struct

    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
    end = max(phoff + phentsize * phnum, shoff + shentsize * shnum)
    return data + b"\0" * max(0, end - len(data))


def cuobjdump() -> str:
    folder = os.environ.get("CUOBJDUMP_DIR")
    found = shutil.which("cuobjdump", path=folder) if folder else shutil.which("cuobjdump")
    if found is None:
        sys.exit("sass_report: no cuobjdump (pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm; "
                 "set CUOBJDUMP_DIR to their bin folder)")
    return found


def sass(cubin: bytes) -> str:
    tool = cuobjdump()
    env = dict(os.environ, PATH=os.path.dirname(tool) + os.pathsep + os.environ.get("PATH", ""))
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([tool, "-sass", f.name], check=True, capture_output=True, text=True, env=env).stdout


def per_function(text: str):
    counts, current = {}, None
    for line in text.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            current = m.group(1)
            counts[current] = collections.Counter()
        elif current is not None:
            for instruction in INSTRUCTION.findall(line):
                counts[current][instruction] += 1
    return counts


def resources(log: str):
    """ptxas -v lines: mangled name -> (registers, stack, spill stores, spill loads)."""
    out, current = {}, None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            current = m.group(1)
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and current:
            out.setdefault(current, {}).update(stack=int(m.group(1)), spill_stores=int(m.group(2)),
                                               spill_loads=int(m.group(3)))
        m = re.search(r"Used (\d+) registers", line)
        if m and current:
            out.setdefault(current, {})["registers"] = int(m.group(1))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="90")
    ap.add_argument("--kernels", choices=["adam", "all"], default="adam")
    ap.add_argument("--sass-out", default=None, help="write the whole disassembly here")
    args = ap.parse_args(argv)
    names = adam_kernels() if args.kernels == "adam" else list(cuda.kernel_names("optimizers"))
    cubin, log, lowered = compile_cubin("optimizers", names, args.arch)
    text = sass(cubin)
    if args.sass_out:
        with open(args.sass_out, "w") as f:
            f.write(text)
    used, counts = resources(log), per_function(text)
    print(f"sm_{args.arch}, NVRTC {nvrtc.getVersion()}, options {' '.join(cuda.compile_options()[:2])}")
    for mangled, name in lowered.items():
        r = used.get(mangled, {})
        memory = ", ".join(f"{k} x{v}" for k, v in sorted(counts.get(mangled, {}).items()))
        print(f"{name}\n    registers {r.get('registers')}, stack {r.get('stack')} B, spills "
              f"{r.get('spill_stores')}/{r.get('spill_loads')} B\n    {memory}")
    generic = {lowered[m]: c for m, c in counts.items() if m in lowered
               and any(k.split(".")[0] in ("LD", "ST") for k in c)}
    if generic:
        print(f"generic loads/stores in: {', '.join(generic)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
