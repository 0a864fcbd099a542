#!/usr/bin/env bash
# The whole GPU check in one command, for a machine with a CUDA GPU and no internet (CuPy, pybind11
# and scikit-build-core already installed): build, run the GPU tests, the `fusedopt bench` GPU
# backends and the GPU benchmark, and leave every log in one folder.
#   bash benchmarks/gpu_check.sh [RESULTS_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_results}
mkdir -p "$out"
out=$(cd "$out" && pwd)
python3 -m pip install --no-build-isolation --no-deps . > "$out/build.log" 2>&1 || { tail -30 "$out/build.log"; exit 1; }
(nvidia-smi; cd /tmp && python3 -m fusedopt info) > "$out/machine.txt" 2>&1
# addopts overridden: the GPU machine has no pytest-rerunfailures (and no internet to get it)
python3 -m pytest -q -m gpu -rs -p no:cacheprovider -o addopts="--strict-markers --strict-config" tests 2>&1 | tee "$out/pytest_gpu.log"
status=${PIPESTATUS[0]}
# the command users run (small sizes), then the full GPU benchmark with 1e9 and the chunk sweep
(cd /tmp && python3 -m fusedopt bench --backends cuda,cupy,torch-cuda --sizes 1e6 1e7 --optimizers adam,sgd \
  --initializers uniform,normal --json "$out/bench_cli.json") 2>&1 | tee "$out/bench_cli.txt"
python3 benchmarks/bench_gpu.py --json "$out/bench_gpu.json" 2>&1 | tee "$out/bench_gpu.txt"
# issue 18: host time per step with no-op launches (200 and 2000 tensors), the kernels' SASS, and the
# targets read off bench_gpu.json and bench_gpu_host.json
python3 benchmarks/bench_gpu_host.py --json "$out/bench_gpu_host.json" 2>&1 | tee "$out/bench_gpu_host.txt"
CUOBJDUMP_DIR=${CUOBJDUMP_DIR:-/usr/local/cuda/bin} python3 dev/sass_report.py --sass-out "$out/adam.sass" 2>&1 | \
  tee "$out/sass_report.txt"
python3 benchmarks/gpu_targets.py "$out" 2>&1 | tee "$out/targets.txt"
# issue 15's optimizers (LAMB and LARS: two launches) at 1e7 and 1e8, against torch where it has them
python3 benchmarks/bench_gpu.py --sizes 1e7 1e8 --optimizers adamax radam adadelta rprop nadam asgd lion lamb lars \
  --adafactor matrix vector model --init-sizes --chunks --grid --json "$out/bench_gpu_family.json" 2>&1 | tee "$out/bench_gpu_family.txt"
# issue 16: Adam over bfloat16 and float16 storage, master copies, stochastic rounding (never run on a GPU yet)
python3 benchmarks/bench_gpu_mixed_precision.py --sizes 1e7 1e8 --json "$out/bench_gpu_mixed_precision.json" 2>&1 | \
  tee "$out/bench_gpu_mixed_precision.txt"
exit "$status"
