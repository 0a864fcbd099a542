"""The GPU test modules, run unchanged on a machine without a GPU against the host emulation of CuPy
(tests/fake_cupy): fusedopt's CUDA code path runs (routing, per-list checks and their cache, chunk
tables, launches with their argument sizes checked, the fills, state_dict), with the kernels compiled
as C++ and run on the host; not DLPack input, streams or the hardware. Only the torch CUDA test is
skipped there. On a GPU machine the same modules run against the real CuPy (pytest -m gpu). The GPU
benchmark code runs here too, at tiny sizes, for its reference checks and output (its timings mean
nothing on the host emulation)."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
GPU_MODULES = ["test_gpu_optimizers.py", "test_gpu_init.py", "test_gpu_rules.py", "test_gpu_graphs.py",
               "test_gpu_adafactor.py"]
SKIPPED_ON_HOST = {"test_torch_cuda_tensor_is_filled_through_a_view",  # need torch built with CUDA
                   "test_torch_cuda_adapter_matches_torch_optim_on_torchs_stream"}


def fake_cupy_env(**extra):
    path = os.pathsep.join([str(HERE / "fake_cupy"), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path, **extra)


def test_gpu_modules_pass_on_the_host_emulation_of_cupy(tmp_path):
    env = fake_cupy_env(FUSEDOPT_GPU_TEST_LARGE="200003")  # 49 chunks for 32 blocks: still a grid-stride walk
    report = tmp_path / "report.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--strict-markers",
         "-W", "error", f"--junitxml={report}", *(str(HERE / m) for m in GPU_MODULES)],
        cwd=HERE.parent, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    cases = ET.parse(report).getroot().iter("testcase")
    skipped = {c.get("name").split("[")[0] for c in cases if c.find("skipped") is not None}
    assert skipped <= SKIPPED_ON_HOST, f"skipped on the host emulation: {skipped - SKIPPED_ON_HOST}\n{run.stdout[-3000:]}"


def test_gpu_benchmark_runs_and_every_implementation_agrees_with_the_reference(tmp_path):
    out = tmp_path / "bench_gpu.json"
    run = subprocess.run(
        [sys.executable, str(HERE.parent / "benchmarks" / "bench_gpu.py"), "--backends", "cuda", "--sizes", "1e4",
         "small3", "--init-sizes", "1e4", "--chunks", "64", "4096", "--grid", "1", "8", "--sweep-sizes", "1e4", "--repeats", "2",
         "--adafactor", "small",
         "--json", str(out)],
        cwd=tmp_path, env=fake_cupy_env(FUSEDOPT_BENCH_BUSY_ELEMENTS="1000"), capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    data = json.loads(out.read_text())
    cases = {(r["name"], r["size"]) for r in data["rows"]}
    assert cases == {("adam", "1e4"), ("sgd", "1e4"), ("adam", "small3"), ("sgd", "small3"), ("uniform", "10000"),
                     ("normal", "10000"), ("kaiming_uniform", "10000"), ("adafactor-small", "small")}, cases
    assert all(r["backend"] == "fusedopt-cuda" and r["agrees_with_reference"] for r in data["rows"]), data["rows"]
    optimizer_rows = [r for r in data["rows"] if r["kind"] == "optimizer"]
    assert all(r["kernel_ms"] > 0 for r in optimizer_rows)  # the kernel-only timing, beside the whole step
    assert all(("frac_traffic" in r) == (r["name"] == "adam") for r in optimizer_rows)  # Adam's own probe
    assert "kernel ms" in run.stdout and "%traffic" in run.stdout
    assert [r["chunk"] for r in data["chunk_sweep"]] == [64, 4096]
    assert [r["blocks_per_sm"] for r in data["blocks_per_sm_sweep"]] == [1, 8]
    assert data["machine"]["gpu"] == "host emulation (fake CuPy)"


def test_gpu_host_time_benchmark_runs_with_no_op_launches(tmp_path):
    out = tmp_path / "bench_gpu_host.json"
    run = subprocess.run(
        [sys.executable, str(HERE.parent / "benchmarks" / "bench_gpu_host.py"), "--tensors", "3", "20", "--steps", "5",
         "--repeats", "3", "--json", str(out)],
        cwd=tmp_path, env=fake_cupy_env(), capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["tensors"], r["case"]) for r in rows] == [(3, "steady"), (3, "fresh"), (20, "steady"), (20, "fresh")]
    assert all(r["us_per_step"] > 0 for r in rows)


def test_gpu_mixed_precision_benchmark_runs_and_agrees_with_the_reference(tmp_path):
    out = tmp_path / "bench_gpu_mixed_precision.json"
    run = subprocess.run(
        [sys.executable, str(HERE.parent / "benchmarks" / "bench_gpu_mixed_precision.py"), "--sizes", "1e4",
         "--repeats", "2", "--json", str(out)],
        cwd=tmp_path, env=fake_cupy_env(), capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert {r["name"] for r in rows} == {"adam-bf16", "adam-fp16", "adam-bf16-master", "adam-bf16-stochastic"}
    assert all(r["backend"] == "fusedopt-cuda" and r["agrees_with_reference"] for r in rows), rows
